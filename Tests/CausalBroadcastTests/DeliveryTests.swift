@testable import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import Testing

@Suite struct DeliveryTests {
    let group = makeGroupID(1)
    let receiverID = Sender(seed: 999, groupID: makeGroupID(1)).id

    func newState(_ configuration: BroadcastConfiguration = .init()) -> BroadcastState {
        BroadcastState(groupID: group, suite: .suite1, me: receiverID, configuration: configuration)
    }

    @Test func outOfOrderArrivalIsDeliveredInSeqOrder() {
        var a = Sender(seed: 1, groupID: group)
        var chain = [a.send(.create)]
        for i in 2...20 { chain.append(a.send(i % 3 == 0 ? .update : .application, payload: [UInt8(i)])) }
        var rng = SeededRandom(seed: 42)
        var state = newState()
        var delivered: [Envelope] = []
        for e in rng.shuffled(chain) {
            #expect(state.receive(e, isKnownSender: everyoneKnown) == .buffered)
            delivered += state.drain()
        }
        #expect(delivered.map(\.seq) == Array(1...20))
        #expect(delivered == chain)
        #expect(state.deliveredSeq(of: a.id) == 20)
        #expect(state.bufferedCount == 0)
        #expect(state.missing().isEmpty)
        #expect(state.frontier == Frontier(heads: [a.id: .init(seq: 20, hash: chain[19].hash)]))
    }

    @Test func acknowledgmentsWaitForWhatTheyAcknowledge() {
        var a = Sender(seed: 1, groupID: group)
        var b = Sender(seed: 2, groupID: group)
        let create = a.send(.create)
        let add = a.send(.add, payload: [1])
        let bAck1 = b.send(.ack, acked: create.reference)
        let bAck2 = b.send(.addAck, acked: add.reference)
        var state = newState()

        #expect(state.receive(bAck1, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.receive(bAck2, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.nextDeliverable() == nil)
        #expect(state.missing() == [.hash(create.hash), .hash(add.hash)].sorted())
        #expect(state.receive(add, isKnownSender: everyoneKnown) == .buffered)
        // The create is missing both as A's seq 1 and as B's acked hash; the add is buffered.
        #expect(state.missing() == [.range(sender: a.id, from: 1, through: 1), .hash(create.hash)])
        #expect(state.nextDeliverable() == nil)
        #expect(state.receive(create, isKnownSender: everyoneKnown) == .buffered)
        let order = state.drain()
        // Each ack after its acked envelope; each sender in seq order.
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1.hash, $0) })
        #expect(order.count == 4)
        #expect(position[create.hash]! < position[bAck1.hash]!)
        #expect(position[add.hash]! < position[bAck2.hash]!)
        #expect(position[create.hash]! < position[add.hash]!)
        #expect(position[bAck1.hash]! < position[bAck2.hash]!)
        #expect(state.operationID(ofAcknowledgeable: add.hash) == OperationID(sender: a.id, seq: 2))
        #expect(state.operationID(ofAcknowledgeable: bAck1.hash) == nil)
        #expect(state.missing().isEmpty)
    }

    @Test func ackOfANonAcknowledgeableEnvelopeIsRejected() {
        var a = Sender(seed: 1, groupID: group)
        var b = Sender(seed: 2, groupID: group)
        _ = a.send(.create)
        let app = a.send(.application, payload: [1])
        let badAck = b.send(.ack, acked: app.reference)
        var state = newState()
        #expect(state.receive(app, isKnownSender: everyoneKnown) == .buffered)
        let before = state
        #expect(state.receive(badAck, isKnownSender: everyoneKnown) == .rejected(.invalidAcknowledgment(sender: b.id, seq: 1)))
        #expect(state == before)
    }

    @Test func duplicatesAreDroppedWithoutChangingState() {
        var a = Sender(seed: 1, groupID: group)
        let e1 = a.send(.create), e2 = a.send(.update), e3 = a.send(.application)
        _ = a.send(.application)
        let e5 = a.send(.application)
        var state = newState()
        #expect(state.receive(e1, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.receive(e2, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.receive(e5, isKnownSender: everyoneKnown) == .buffered)
        // buffered duplicate
        var before = state
        #expect(state.receive(e2, isKnownSender: everyoneKnown) == .duplicate)
        #expect(state == before)
        // in flight duplicate
        let first = state.nextDeliverable()
        #expect(first == e1)
        before = state
        #expect(state.receive(e1, isKnownSender: everyoneKnown) == .duplicate)
        #expect(state == before)
        #expect(state.markDelivered(e1) == true)
        // delivered duplicate, and markDelivered twice is a no-op
        before = state
        #expect(state.receive(e1, isKnownSender: everyoneKnown) == .duplicate)
        #expect(state.markDelivered(e1) == false)
        #expect(state == before)
        #expect(state.drain() == [e2])
        #expect(state.receive(e3, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain().map(\.seq) == [3])
        before = state
        #expect(state.receive(e2, isKnownSender: everyoneKnown) == .duplicate)  // acknowledgeable, remembered
        #expect(state.receive(e3, isKnownSender: everyoneKnown) == .duplicate)
        #expect(state == before)
    }

    @Test func oldEnvelopesOutsideTheWindowCountAsDuplicates() {
        var a = Sender(seed: 1, groupID: group)
        let chain = (1...6).map { _ in a.send(.application, payload: [1]) }
        var state = newState(.init(recentHashesPerSender: 2))
        for e in chain { _ = state.receive(e, isKnownSender: everyoneKnown) }
        #expect(state.drain().count == 6)
        let before = state
        // seq 1 fell out of the window: a forged seq 1 cannot be checked and is dropped as a duplicate.
        let forgedOld = a.make(.application, seq: 1, prev: nil, payload: [2])
        #expect(state.receive(forgedOld, isKnownSender: everyoneKnown) == .duplicate)
        #expect(state.receive(chain[0], isKnownSender: everyoneKnown) == .duplicate)
        #expect(state == before)
        // seq 5 is in the window: a different one is equivocation.
        let forged5 = a.make(.application, seq: 5, prev: chain[3].hash, payload: [2])
        #expect(state.receive(forged5, isKnownSender: everyoneKnown) == .rejected(.equivocation(sender: a.id, seq: 5)))
        var expected = before
        expected.cuts = [a.id: 5]
        #expect(state == expected)
    }

    @Test func equivocationSameSeqIsReported() {
        var a = Sender(seed: 1, groupID: group)
        let e1 = a.send(.create)
        let e2 = a.send(.update, payload: [1])
        let e2b = a.make(.update, seq: 2, prev: e1.hash, payload: [2])
        var state = newState()
        #expect(state.receive(e2, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.receive(e2b, isKnownSender: everyoneKnown) == .rejected(.equivocation(sender: a.id, seq: 2)))
        // The sender is cut off from the forked seq: neither side is delivered any more, and the
        // pair is handed over as evidence.
        #expect(state.equivocators == [a.id] && state.cuts == [a.id: 2])
        #expect(state.bufferedCount == 0)
        let evidence = state.takeForkEvidence()
        #expect(evidence.map { Set([$0.first.hash, $0.second.hash]) } == [e2.hash, e2b.hash])
        #expect(evidence?.verify() == true && evidence?.cutSeq == 2)
        #expect(state.takeForkEvidence() == nil)
        // What precedes the fork is still delivered; the fork's positions are refused.
        #expect(state.receive(e1, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain() == [e1])
        let before = state
        #expect(state.receive(e2, isKnownSender: everyoneKnown) == .rejected(.afterEquivocation(sender: a.id, seq: 2)))
        #expect(state.receive(e2b, isKnownSender: everyoneKnown) == .rejected(.afterEquivocation(sender: a.id, seq: 2)))
        #expect(state == before)
    }

    @Test func acknowledgmentsPastACutDoNotWait() {
        var a = Sender(seed: 1, groupID: group)
        var b = Sender(seed: 2, groupID: group)
        let e1 = a.send(.create)
        let e2 = a.send(.update, payload: [1])
        let e2b = a.make(.update, seq: 2, prev: e1.hash, payload: [2])
        let e3b = a.make(.update, seq: 3, prev: e2b.hash, payload: [3])
        // b took the other side and acknowledged a position I will never deliver.
        let ack = b.send(.ack, acked: e3b.reference)
        var state = newState()
        for e in [e1, e2, ack] { _ = state.receive(e, isKnownSender: everyoneKnown) }
        #expect(state.drain() == [e1, e2])
        #expect(state.missing() == [.hash(e3b.hash)])
        #expect(state.receive(e2b, isKnownSender: everyoneKnown) == .rejected(.equivocation(sender: a.id, seq: 2)))
        // Past the cut nothing is awaited: b's chain flows.
        #expect(state.drain() == [ack])
        #expect(state.isUnresolvable(e3b.reference))
        #expect(state.missing().isEmpty)
    }

    /// A member only the cut side introduced is remembered as such across encoding (a restarted
    /// member does not wait for it either), and how many are remembered is bounded.
    @Test func strangersPastACutSurviveEncodingAndAreBounded() throws {
        var a = Sender(seed: 1, groupID: group)
        var b = Sender(seed: 2, groupID: group)
        var newcomer = Sender(seed: 3, groupID: group)
        let e1 = a.send(.create)
        let e2 = a.send(.update, payload: [1])
        let e2b = a.make(.add, seq: 2, prev: e1.hash, payload: [2])  // the side that adds `newcomer`
        let fromNewcomer = newcomer.send(.update, payload: [7])
        let ack = b.send(.ack, acked: fromNewcomer.reference)  // b took that side
        var state = newState()
        for e in [e1, e2] { _ = state.receive(e, isKnownSender: everyoneKnown) }
        #expect(state.drain() == [e1, e2])
        #expect(state.receive(e2b, isKnownSender: everyoneKnown) == .rejected(.equivocation(sender: a.id, seq: 2)))
        let known: (MemberID) -> Bool = { $0 == a.id || $0 == b.id }
        #expect(state.receive(fromNewcomer, isKnownSender: known) == .rejected(.unknownSender(newcomer.id)))
        #expect(state.isStrangerPastCut(newcomer.id))

        var restarted = try BroadcastState(wireBytes: state.wireBytes)
        #expect(restarted == state)
        #expect(restarted.isStrangerPastCut(newcomer.id))
        #expect(restarted.reachableSeq(of: newcomer.id, upTo: 1) == 0)
        _ = restarted.receive(ack, isKnownSender: known)
        #expect(restarted.drain() == [ack])

        // Anyone can sign as a stranger: past the bound nobody more is remembered.
        var flooded = state
        for seed in 0..<UInt64(BroadcastState.maximumStrangersPastCut + 10) {
            var stranger = Sender(seed: 1_000 + seed, groupID: group)
            _ = flooded.receive(stranger.send(.create), isKnownSender: known)
        }
        let decoded = try BroadcastState(wireBytes: flooded.wireBytes)
        #expect(decoded == flooded)
        #expect(decoded.isStrangerPastCut(newcomer.id))
        var rememberedExtra = 0
        for seed in 0..<UInt64(BroadcastState.maximumStrangersPastCut + 10)
        where decoded.isStrangerPastCut(Sender(seed: 1_000 + seed, groupID: group).id) { rememberedExtra += 1 }
        #expect(rememberedExtra == BroadcastState.maximumStrangersPastCut - 1)
    }

    @Test func equivocationBadPrevIsReported() {
        var a = Sender(seed: 1, groupID: group)
        let e1 = a.send(.create), e2 = a.send(.update), e3 = a.send(.update), e4 = a.send(.update)
        let bogus = Bytes32([UInt8](repeating: 0x55, count: 32))!
        // prev contradicting the delivered predecessor
        var state = newState()
        _ = state.receive(e1, isKnownSender: everyoneKnown)
        _ = state.receive(e2, isKnownSender: everyoneKnown)
        #expect(state.drain().count == 2)
        var expected = state
        expected.cuts = [a.id: 2]
        let bad3 = a.make(.update, seq: 3, prev: bogus)
        #expect(state.receive(bad3, isKnownSender: everyoneKnown) == .rejected(.equivocation(sender: a.id, seq: 3)))
        #expect(state == expected)
        // prev contradicting a buffered predecessor: the pair is evidence, cut from the lower seq
        var s2 = newState()
        #expect(s2.receive(e3, isKnownSender: everyoneKnown) == .buffered)
        let bad4 = a.make(.update, seq: 4, prev: bogus)
        #expect(s2.receive(bad4, isKnownSender: everyoneKnown) == .rejected(.equivocation(sender: a.id, seq: 4)))
        #expect(s2.cuts == [a.id: 3] && s2.bufferedCount == 0)
        #expect(s2.takeForkEvidence().map { [$0.first.hash, $0.second.hash] } == [e3.hash, bad4.hash])
        // a buffered successor whose prev is not this envelope's hash
        var s3 = newState()
        #expect(s3.receive(e4, isKnownSender: everyoneKnown) == .buffered)
        let other3 = a.make(.update, seq: 3, prev: e2.hash, payload: [9])
        #expect(s3.receive(other3, isKnownSender: everyoneKnown) == .rejected(.equivocation(sender: a.id, seq: 3)))
        #expect(s3.cuts == [a.id: 3] && s3.bufferedCount == 0)
        #expect(s3.takeForkEvidence()?.cutSeq == 3)
        for e in [e1, e2] { #expect(s3.receive(e, isKnownSender: everyoneKnown) == .buffered) }
        #expect(s3.receive(e3, isKnownSender: everyoneKnown) == .rejected(.afterEquivocation(sender: a.id, seq: 3)))
        #expect(s3.drain() == [e1, e2])
    }

    @Test func missingDependenciesAreReportedAndResolved() {
        var a = Sender(seed: 1, groupID: group)
        var b = Sender(seed: 2, groupID: group)
        let chain = (1...7).map { i in a.send(i == 1 ? .create : .update) }
        let bChain = [b.send(.ack, acked: chain[1].reference), b.send(.application), b.send(.application)]
        var state = newState()
        for i in [0, 3, 5] { #expect(state.receive(chain[i], isKnownSender: everyoneKnown) == .buffered) }
        #expect(state.receive(bChain[2], isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain() == [chain[0]])
        var expected: [MissingEnvelope] = [
            .range(sender: a.id, from: 2, through: 3), .range(sender: a.id, from: 5, through: 5),
            .range(sender: b.id, from: 1, through: 2),
        ]
        expected.sort()
        #expect(state.missing() == expected)
        #expect(state.receive(bChain[0], isKnownSender: everyoneKnown) == .buffered)
        let withHash = state.missing()
        #expect(withHash.contains(.hash(chain[1].hash)))
        #expect(withHash.contains(.range(sender: b.id, from: 2, through: 2)))
        #expect(state.nextDeliverable() == nil)
        for e in [chain[1], chain[2], chain[4], bChain[1]] {
            #expect(state.receive(e, isKnownSender: everyoneKnown) == .buffered)
        }
        let out = state.drain()
        #expect(out.count == 8)
        #expect(state.missing().isEmpty)
        #expect(state.bufferedCount == 0)
        #expect(state.deliveredSeq(of: a.id) == 6 && state.deliveredSeq(of: b.id) == 3)
    }

    @Test func strangerIsRejected() {
        var a = Sender(seed: 1, groupID: group)
        var stranger = Sender(seed: 66, groupID: group)
        let e = stranger.send(.create)
        var state = newState()
        _ = state.receive(a.send(.create), isKnownSender: everyoneKnown)
        let before = state
        #expect(state.receive(e, isKnownSender: { $0 == a.id }) == .rejected(.unknownSender(stranger.id)))
        #expect(state == before)
        #expect(state.receive(wire: e.wireBytes, isKnownSender: { $0 == a.id }) == .rejected(.unknownSender(stranger.id)))
        #expect(state == before)
    }

    @Test func badSignatureIsRejectedAndNotStored() throws {
        var a = Sender(seed: 1, groupID: group)
        let e = a.send(.create, payload: [1, 2, 3])
        var w = e.wireBytes
        w[w.count - 6] ^= 1  // the signature's last byte (presence, length and 3 payload bytes follow)
        let forged = try Envelope(wire: w, groupID: group)
        var state = newState()
        let before = state
        #expect(state.receive(forged, isKnownSender: everyoneKnown) == .rejected(.badSignature))
        #expect(state == before)
        #expect(state.bufferedCount == 0 && state.nextDeliverable() == nil)
        // The genuine one is still accepted afterwards.
        #expect(state.receive(e, isKnownSender: everyoneKnown) == .buffered)
    }

    @Test func everyTamperedByteIsRejectedAndNeverDelivered() {
        var a = Sender(seed: 1, groupID: group)
        let e1 = a.send(.create, payload: [1])
        let e2 = a.send(.ack, acked: e1.reference, payload: Array("payload".utf8))
        var state = newState()
        _ = state.receive(e1, isKnownSender: everyoneKnown)
        _ = state.drain()
        let before = state
        let w = e2.wireBytes
        for i in w.indices {
            var t = w
            t[i] ^= 0x10
            let outcome = state.receive(wire: t, isKnownSender: everyoneKnown)
            switch outcome {
            case .rejected(.undecodable), .rejected(.badSignature): break
            default: Issue.record("byte \(i): \(outcome)")
            }
        }
        #expect(state == before)
        #expect(state.nextDeliverable() == nil)
    }

    @Test func wrongGroupIsRejected() throws {
        var other = Sender(seed: 1, groupID: makeGroupID(2))
        let e = other.send(.create)
        var state = newState()
        let before = state
        #expect(state.receive(e, isKnownSender: everyoneKnown) == .rejected(.wrongGroup))
        #expect(state == before)
        // Its wire bytes read as this group do not verify.
        #expect(state.receive(wire: e.wireBytes, isKnownSender: everyoneKnown) == .rejected(.badSignature))
        #expect(state == before)
        #expect(state.receive(wire: [Envelope.currentVersion, 1, 3], isKnownSender: everyoneKnown) == .rejected(.undecodable(.truncated)))
        #expect(state.receive(wire: [2], isKnownSender: everyoneKnown) == .rejected(.undecodable(.unsupportedVersion(2))), "the version before the view hash")
        #expect(state.receive(wire: [3], isKnownSender: everyoneKnown) == .rejected(.undecodable(.unsupportedVersion(3))), "the version before fork evidence")
        #expect(state.receive(wire: [5], isKnownSender: everyoneKnown) == .rejected(.undecodable(.unsupportedVersion(5))))
        #expect(state == before)
    }

    @Test func bufferOverflowIsAnExplicitError() {
        var a = Sender(seed: 1, groupID: group)
        let chain = (1...8).map { _ in a.send(.application, payload: [7, 7]) }
        var state = newState(.init(maximumBufferedEnvelopes: 5))
        for e in chain[1...5] { #expect(state.receive(e, isKnownSender: everyoneKnown) == .buffered) }
        #expect(state.bufferedCount == 5)
        let before = state
        #expect(state.receive(chain[6], isKnownSender: everyoneKnown) == .rejected(.bufferFull))
        #expect(state == before)
        // The sender's next envelope is still accepted, so a full buffer always drains: room is made
        // by dropping the envelope furthest ahead, which is then missing and fetched again.
        #expect(state.receive(chain[0], isKnownSender: everyoneKnown) == .buffered)
        #expect(state.bufferedCount == 5)
        #expect(state.drain() == Array(chain[0...4]))
        #expect(state.missing().isEmpty)
        #expect(state.receive(chain[5], isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain() == [chain[5]])
        #expect(state.receive(chain[6], isKnownSender: everyoneKnown) == .buffered)

        var byBytes = newState(.init(maximumBufferedPayloadBytes: 5))
        #expect(byBytes.receive(chain[1], isKnownSender: everyoneKnown) == .buffered)
        #expect(byBytes.receive(chain[2], isKnownSender: everyoneKnown) == .buffered)
        let beforeBytes = byBytes
        #expect(byBytes.receive(chain[3], isKnownSender: everyoneKnown) == .rejected(.bufferFull))
        #expect(byBytes == beforeBytes)
        #expect(byBytes.bufferedBytes == 4)
    }

    @Test("one sender cannot fill the shared buffer; another's next envelope makes room", arguments: [true, false])
    func perSenderQuotas(byBytes: Bool) {
        var flood = Sender(seed: 1, groupID: group)
        var honest = Sender(seed: 2, groupID: group)
        let floods = (1...40).map { _ in flood.send(.application, payload: [1, 2, 3, 4]) }
        let honestOnes = (1...6).map { _ in honest.send(.application, payload: [5, 6, 7, 8]) }
        var state = newState(byBytes
            ? .init(maximumBufferedPayloadBytes: 40, maximumBufferedPayloadBytesPerSender: 24)
            : .init(maximumBufferedEnvelopes: 10, maximumBufferedEnvelopesPerSender: 6))
        // The flood (all ahead of its first envelope) stops at its quota, typed.
        let outcomes = floods[1...].map { state.receive($0, isKnownSender: everyoneKnown) }
        #expect(outcomes.filter { $0 == .buffered }.count == 6)
        #expect(outcomes.dropFirst(6).allSatisfy { $0 == .rejected(.bufferFull) })
        // Another sender still has room.
        for e in honestOnes[1...4] { #expect(state.receive(e, isKnownSender: everyoneKnown) == .buffered) }
        #expect(state.receive(honestOnes[5], isKnownSender: everyoneKnown) == .rejected(.bufferFull), "shared limit reached")
        // Its next envelope is taken all the same; the flood's furthest envelopes make room.
        #expect(state.receive(honestOnes[0], isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain().filter { $0.sender == honest.id } == Array(honestOnes[0...4]))
        // The flood's own next envelope is taken too, dropping its furthest one.
        #expect(state.receive(floods[0], isKnownSender: everyoneKnown) == .buffered)
        let delivered = state.drain()
        #expect(delivered.first == floods[0])
        #expect(state.bufferedCount <= (byBytes ? 10 : 10))
    }

    @Test func ownEnvelopes() throws {
        let me = Sender(seed: 999, groupID: group)
        var mine = me
        var state = newState()
        #expect(me.id == receiverID)
        var sent: [Envelope] = []
        for kind in [EnvelopeKind.create, .application, .update] {
            let position = state.nextOwnPosition()
            #expect(position.seq == mine.seq + 1 && position.prev == mine.prev)
            let e = mine.send(kind)
            #expect(state.recordOwn(e) == true)
            #expect(state.recordOwn(e) == false)
            sent.append(e)
        }
        #expect(state.deliveredSeq(of: me.id) == 3)
        #expect(state.operationID(ofAcknowledgeable: sent[2].hash) == OperationID(sender: me.id, seq: 3))
        let before = state
        for e in sent { #expect(state.receive(e, isKnownSender: { _ in false }) == .duplicate) }
        let forged = me.make(.application, seq: 3, prev: sent[1].hash, payload: [1])
        #expect(state.receive(forged, isKnownSender: everyoneKnown) == .rejected(.unexpectedOwnEnvelope(seq: 3)))
        let ahead = me.make(.application, seq: 4, prev: sent[2].hash)
        #expect(state.receive(ahead, isKnownSender: everyoneKnown) == .rejected(.unexpectedOwnEnvelope(seq: 4)))
        #expect(state == before)
        var other = Sender(seed: 5, groupID: group)
        #expect(state.recordOwn(other.send(.create)) == false)
    }

    @Test func frontierAdoptionSkipsPreFrontierEnvelopes() {
        var a = Sender(seed: 1, groupID: group)
        var b = Sender(seed: 2, groupID: group)
        let aChain = [a.send(.create), a.send(.application), a.send(.add), a.send(.application), a.send(.update), a.send(.application)]
        let b1 = b.send(.ack, acked: aChain[0].reference)
        let b2 = b.send(.addAck, acked: aChain[2].reference)  // acknowledges a pre-frontier add
        let b3 = b.send(.ack, acked: aChain[4].reference)
        let frontier = Frontier(heads: [
            a.id: .init(seq: 4, hash: aChain[3].hash),
            b.id: .init(seq: 1, hash: b1.hash),
        ])
        var state = newState()
        // Arrived before the welcome: a pre-frontier one and a post-frontier one.
        #expect(state.receive(aChain[1], isKnownSender: everyoneKnown) == .buffered)
        #expect(state.receive(aChain[4], isKnownSender: everyoneKnown) == .buffered)
        state.adoptFrontier(frontier)
        #expect(state.frontier == frontier)
        #expect(state.bufferedCount == 1)
        #expect(state.equivocators.isEmpty)
        #expect(state.nextOwnPosition().seq == 1)

        // The ack of the pre-frontier add waits until that add is seen.
        #expect(state.receive(b2, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.receive(b3, isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain() == [aChain[4]])
        #expect(state.missing() == [.hash(aChain[2].hash)])

        var before = state
        #expect(state.receive(aChain[0], isKnownSender: everyoneKnown) == .skippedBeforeJoin)
        // The head itself is known by its hash from the frontier: a duplicate.
        #expect(state.receive(aChain[3], isKnownSender: everyoneKnown) == .duplicate)
        #expect(state.receive(aChain[3], isKnownSender: everyoneKnown) == .duplicate)
        #expect(state.receive(b1, isKnownSender: everyoneKnown) == .duplicate)
        #expect(state.nextDeliverable() == nil)
        // (a create was remembered; nothing else changed)
        #expect(state.operationID(ofAcknowledgeable: aChain[0].hash) == OperationID(sender: a.id, seq: 1))
        before = state
        #expect(state.receive(aChain[2], isKnownSender: everyoneKnown) == .skippedBeforeJoin)
        #expect(state != before)
        #expect(state.operationID(ofAcknowledgeable: aChain[2].hash) == OperationID(sender: a.id, seq: 3))
        #expect(state.drain() == [b2, b3])
        #expect(state.receive(aChain[5], isKnownSender: everyoneKnown) == .buffered)
        #expect(state.drain() == [aChain[5]])
        #expect(state.missing().isEmpty)

        // A different envelope at exactly the head's seq is equivocation.
        before = state
        let forgedHead = a.make(.application, seq: 4, prev: aChain[2].hash, payload: [1])
        #expect(state.receive(forgedHead, isKnownSender: everyoneKnown) == .rejected(.equivocation(sender: a.id, seq: 4)))
        var expected = before
        expected.cuts = [a.id: 4]
        #expect(state == expected)
    }

    @Test func frontierAdoptionDetectsAConflictingBufferedHead() {
        var a = Sender(seed: 1, groupID: group)
        let e1 = a.send(.create), e2 = a.send(.update)
        let other2 = a.make(.update, seq: 2, prev: e1.hash, payload: [5])
        var state = newState()
        #expect(state.receive(other2, isKnownSender: everyoneKnown) == .buffered)
        state.adoptFrontier(Frontier(heads: [a.id: .init(seq: 2, hash: e2.hash)]))
        #expect(state.equivocators == [a.id])
        #expect(state.bufferedCount == 0)
        #expect(state.deliveredSeq(of: a.id) == 2)
    }

    @Test func stateEncodingRoundTrips() throws {
        var a = Sender(seed: 1, groupID: group)
        let b = Sender(seed: 2, groupID: group)
        var me = Sender(seed: 999, groupID: group)
        var state = newState(.init(maximumBufferedEnvelopes: 50, recentHashesPerSender: 3))
        func check(_ s: BroadcastState) throws {
            let bytes = s.wireBytes
            let decoded = try BroadcastState(wireBytes: bytes)
            #expect(decoded == s)
            #expect(decoded.wireBytes == bytes)
            for n in 0..<bytes.count {
                #expect(throws: WireError.self) { try BroadcastState(wireBytes: Array(bytes[..<n])) }
            }
        }
        try check(state)
        let aChain = (1...8).map { i in a.send(i % 2 == 1 ? .update : .application, payload: [UInt8(i)]) }
        state.adoptFrontier(Frontier(heads: [b.id: .init(seq: 3, hash: Bytes32([UInt8](repeating: 3, count: 32))!)]))
        try check(state)
        #expect(state.recordOwn(me.send(.create)) == true)
        for e in aChain[0...5] { _ = state.receive(e, isKnownSender: everyoneKnown) }
        _ = state.receive(b.make(.ack, seq: 5, prev: Bytes32.zero, acked: aChain[6].reference), isKnownSender: everyoneKnown)
        _ = state.receive(a.make(.update, seq: 3, prev: aChain[1].hash, payload: [0]), isKnownSender: everyoneKnown)
        try check(state)
        _ = state.nextDeliverable().map { state.markDelivered($0) }
        _ = state.nextDeliverable()  // left in flight
        try check(state)
        _ = state.drain()
        try check(state)
        state.requeueInFlight()
        try check(state)
        #expect(state.drain().count >= 0)
        try check(state)
        #expect(!state.equivocators.isEmpty)
    }

    @Test func stateDecoderIsTotalOnRandomInput() {
        var a = Sender(seed: 1, groupID: group)
        var state = newState()
        for e in (1...5).map({ i in a.send(i == 1 ? .create : .application) }).reversed() {
            _ = state.receive(e, isKnownSender: everyoneKnown)
        }
        _ = state.nextDeliverable()
        let valid = state.wireBytes
        var rng = SeededRandom(seed: 77)
        for round in 0..<3000 {
            var bytes: [UInt8]
            if round % 3 == 0 {
                bytes = rng.bytes(Int(rng.next() % 400))
            } else {
                bytes = valid
                for _ in 0..<(1 + rng.next() % 3) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            do {
                let decoded = try BroadcastState(wireBytes: bytes)
                #expect(decoded.wireBytes == bytes)
            } catch {
                _ = error as WireError
            }
        }
    }

    /// Several senders with chains that acknowledge each other's acknowledgeable envelopes, delivered
    /// to a receiver in random order with duplicates: every envelope exactly once, in relaxed order.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomizedRelaxedOrder(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var senders = (0..<4).map { Sender(seed: 1000 * seed + UInt64($0), groupID: group) }
        var all: [Envelope] = []
        var acknowledgeable: [Envelope] = []
        for _ in 0..<120 {
            let s = Int(rng.next() % UInt64(senders.count))
            let roll = rng.next() % 10
            let e: Envelope
            if roll < 4, !acknowledgeable.isEmpty {
                let target = acknowledgeable[Int(rng.next() % UInt64(acknowledgeable.count))]
                let kinds: [EnvelopeKind] = [.ack, .addAck, .welcomeAck]
                e = senders[s].send(kinds[Int(rng.next() % 3)], acked: target.reference, payload: [UInt8(roll)])
            } else if roll < 7 {
                let kinds: [EnvelopeKind] = [.create, .add, .remove, .update]
                e = senders[s].send(kinds[Int(rng.next() % 4)], payload: rng.bytes(Int(rng.next() % 40)))
                acknowledgeable.append(e)
            } else {
                e = senders[s].send(.application, payload: rng.bytes(Int(rng.next() % 60)))
            }
            all.append(e)
        }
        var arrivals = all
        for e in all where rng.next() % 3 == 0 { arrivals.append(e) }
        arrivals = rng.shuffled(arrivals)

        var state = newState(.init(maximumBufferedEnvelopes: 200, recentHashesPerSender: 8))
        var delivered: [Envelope] = []
        var seen = Set<Bytes32>()
        for (i, e) in arrivals.enumerated() {
            let outcome = state.receive(e, isKnownSender: everyoneKnown)
            if seen.contains(e.hash) {
                #expect(outcome == .duplicate)
            } else {
                #expect(outcome == .buffered)
                seen.insert(e.hash)
            }
            // Sometimes deliver only part, sometimes persist and restore in between.
            if rng.next() % 2 == 0 { delivered += state.drain() }
            if i % 37 == 0 {
                let restored = try BroadcastState(wireBytes: state.wireBytes)
                #expect(restored == state)
                state = restored
            }
        }
        delivered += state.drain()

        #expect(delivered.count == all.count)
        #expect(Set(delivered.map(\.hash)).count == all.count)
        #expect(state.bufferedCount == 0 && state.missing().isEmpty && state.equivocators.isEmpty)
        var position: [Bytes32: Int] = [:]
        var lastSeq: [MemberID: UInt64] = [:]
        for (i, e) in delivered.enumerated() {
            #expect(e.seq == (lastSeq[e.sender] ?? 0) + 1, "per-sender order")
            lastSeq[e.sender] = e.seq
            if let acked = e.acked {
                #expect(position[acked.hash] != nil, "acknowledgment after what it acknowledges")
                let op = state.operationID(ofAcknowledgeable: acked.hash)
                #expect(op != nil)
            }
            position[e.hash] = i
        }
        for s in senders { #expect(state.deliveredSeq(of: s.id) == s.seq) }
    }
}
