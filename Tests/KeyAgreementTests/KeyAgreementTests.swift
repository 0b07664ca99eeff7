import Testing
import DCGKAEncoding
import DCGKACrypto
import TwoPartyMessaging
import Membership
import DCGKATestSupport
@_spi(Simulation) @testable import KeyAgreement

/// One member: identity, prekeys and DCGKA state, driven directly (no broadcast layer).
struct Member {
    let identity: IdentityKey
    var prekeys = PrekeyStore()
    let bundle: KeyBundle
    var state: DCGKAState
    var seq: UInt64 = 0

    init(seed: UInt64, groupID: GroupID, rng: inout SeededRandom) {
        identity = IdentityKey.generate(using: &rng)
        var store = PrekeyStore()
        bundle = store.generate(identity: identity, notAfter: 2_000_000_000, using: &rng)
        prekeys = store
        state = DCGKAState(me: identity.id, groupID: groupID)
    }

    var id: MemberID { identity.id }
    mutating func nextSeq() -> UInt64 { seq += 1; return seq }
}

@Suite("DCGKA state transitions")
struct KeyAgreementTests {
    static let groupNonce = Bytes32([UInt8](repeating: 0x6e, count: 32))!
    /// `count` members; member 0's create lists the first `listed` (all by default), which fixes the group ID.
    static func group(_ count: Int, seed: UInt64, listed: Int? = nil) -> (members: [Member], directory: [MemberID: KeyBundle], rng: SeededRandom) {
        var rng = SeededRandom(seed: seed)
        var members: [Member] = []
        for i in 0..<count { members.append(Member(seed: UInt64(i), groupID: GroupID(.zero), rng: &rng)) }
        // The group ID member 0's create will carry (§6.1).
        let groupID = KeyDerivations.groupID(
            creator: members[0].id, nonce: groupNonce, members: members.prefix(listed ?? count).dropFirst().map(\.id), suite: CipherSuiteID.suite1.suite)
        for i in members.indices { members[i].state = DCGKAState(me: members[i].id, groupID: groupID) }
        var directory: [MemberID: KeyBundle] = [:]
        for member in members { directory[member.id] = member.bundle }
        return (members, directory, rng)
    }

    @Test("create, then an update: every member derives the same update secrets for the sender and for each acknowledger")
    func createAndUpdateAgree() throws {
        var (members, directory, rng) = Self.group(4, seed: 1)
        func keys(_ m: Member) -> KeyMaterial { KeyMaterial(prekeys: m.prekeys, peerBundles: directory) }
        let createSeq = members[0].nextSeq()
        let created = try members[0].state.create(
            bundles: members.dropFirst().map(\.bundle), creatorBundle: members[0].bundle, groupNonce: Self.groupNonce, seq: createSeq, keys: keys(members[0]), using: &rng)
        var secrets: [Int: [String: Bytes32]] = [0: ["0@\(createSeq)": try #require(created.updateSecret)]]
        var acks: [(from: Int, seq: UInt64, body: ControlBody)] = []
        for i in 1..<4 {
            let mySeq = members[i].nextSeq()
            let out = try members[i].state.process(
                sender: members[0].id, seq: createSeq, body: created.body, acked: nil, mySeq: mySeq, keys: keys(members[i]), using: &rng)
            secrets[i, default: [:]]["0@\(createSeq)"] = out.senderSecret
            secrets[i, default: [:]]["\(i)@\(mySeq)"] = out.mySecret
            acks.append((i, mySeq, try #require(out.acknowledgment)))
        }
        for ack in acks {
            for j in 0..<4 where j != ack.from {
                let out = try members[j].state.process(
                    sender: members[ack.from].id, seq: ack.seq, body: ack.body,
                    acked: OperationID(sender: members[0].id, seq: createSeq), mySeq: members[j].seq + 1, keys: keys(members[j]), using: &rng)
                secrets[j, default: [:]]["\(ack.from)@\(ack.seq)"] = out.senderSecret
            }
        }
        // Every (member, epoch) secret is the same at all four members.
        let all = Set(secrets.values.flatMap(\.keys))
        #expect(all.count == 4)
        for key in all {
            let values = Set((0..<4).compactMap { secrets[$0]?[key] })
            #expect(values.count == 1, "\(key)")
            #expect((0..<4).allSatisfy { secrets[$0]?[key] != nil }, "\(key)")
        }
        // Every member secret was consumed by the acknowledgments.
        for member in members { #expect(member.state.memberSecrets.isEmpty) }
        #expect(Set(members.map(\.state.members)).count == 1)
    }

    @Test("a failed process leaves the state exactly as it was (transaction rollback)")
    func failedProcessRollsBack() throws {
        var (members, directory, rng) = Self.group(3, seed: 2)
        func keys(_ m: Member) -> KeyMaterial { KeyMaterial(prekeys: m.prekeys, peerBundles: directory) }
        let createSeq = members[0].nextSeq()
        let created = try members[0].state.create(
            bundles: members.dropFirst().map(\.bundle), creatorBundle: members[0].bundle, groupNonce: Self.groupNonce, seq: createSeq, keys: keys(members[0]), using: &rng)
        // Corrupt the direct message for member 1: the create applies to history first, then decryption fails.
        var body = created.body
        body.directMessages = body.directMessages.map { dm in
            var dm = dm
            dm.message.ciphertext[dm.message.ciphertext.count - 1] ^= 1
            return dm
        }
        let sender = members[0].id
        let memberKeys = keys(members[1])
        var state = members[1].state
        let before = state
        let beforeBytes = before.wireBytes
        // A call that fails after its changes (here: abandoned on purpose) leaves nothing behind.
        #expect(throws: DCGKAError.self) {
            try state.transaction { (s) throws(DCGKAError) in
                _ = try s.process(sender: sender, seq: createSeq, body: created.body, acked: nil, mySeq: 1, keys: memberKeys, using: &rng)
                throw DCGKAError.invalidOperation("abandoned")
            }
        }
        #expect(state == before)
        #expect(state.wireBytes == beforeBytes)
        #expect(state.journal == nil)
        // A direct message that does not decrypt costs its secret, never the membership (§5.7):
        // the create applies, I acknowledge without a secret, and I know whose ratchet I lost.
        var damaged = state
        let lost = try damaged.transaction { (s) throws(DCGKAError) in
            try s.process(sender: sender, seq: createSeq, body: body, acked: nil, mySeq: 1, keys: memberKeys, using: &rng)
        }
        #expect(damaged.members == Set(members.map(\.id)))
        #expect(lost.acknowledgment?.fields == .ack(withoutSecret: true))
        #expect(lost.senderSecret == nil && lost.mySecret == nil)
        #expect(lost.lost.map(\.member) == [sender])
        #expect(damaged.lostRatchets == [sender])
        // The intact message still works afterwards.
        let out = try state.transaction { (s) throws(DCGKAError) in
            try s.process(sender: sender, seq: createSeq, body: created.body, acked: nil, mySeq: 1, keys: memberKeys, using: &rng)
        }
        #expect(out.senderSecret != nil && out.mySecret != nil)
    }

    @Test("a failure after an acknowledgment was recorded undoes the acknowledgment")
    func failedAcknowledgmentRollsBack() throws {
        var (members, directory, rng) = Self.group(3, seed: 5)
        func keys(_ m: Member) -> KeyMaterial { KeyMaterial(prekeys: m.prekeys, peerBundles: directory) }
        let createSeq = members[0].nextSeq()
        let created = try members[0].state.create(
            bundles: members.dropFirst().map(\.bundle), creatorBundle: members[0].bundle, groupNonce: Self.groupNonce, seq: createSeq, keys: keys(members[0]), using: &rng)
        let createOp = OperationID(sender: members[0].id, seq: createSeq)
        let memberKeys = keys(members[2])
        var state = members[2].state
        // This test follows the create's knowledge row, so the create must stay unfolded.
        state.history.foldsSettledOperations = false
        _ = try state.transaction { (s) throws(DCGKAError) in
            try s.process(sender: members[0].id, seq: createSeq, body: created.body, acked: nil, mySeq: 1, keys: memberKeys, using: &rng)
        }
        // Member 1's ack of the create, carrying a "forward" to member 2 that is not a 2SM message
        // from member 1: the ack is recorded in the history first, then the call is abandoned.
        let bogus = ControlBody(
            fields: .ack(withoutSecret: false),
            directMessages: [TaggedDirectMessage(tag: .explicit(members[2].id), message: created.body.directMessages[0].message)])
        let before = state
        let beforeBytes = state.wireBytes
        #expect(state.history.knownSeq(of: createOp, by: members[1].id) == nil)
        #expect(throws: DCGKAError.self) {
            try state.transaction { (s) throws(DCGKAError) in
                _ = try s.process(sender: members[1].id, seq: 1, body: bogus, acked: createOp, mySeq: 2, keys: memberKeys, using: &rng)
                #expect(s.history.knownSeq(of: createOp, by: members[1].id) == 1, "recorded before the failure")
                throw DCGKAError.invalidOperation("abandoned")
            }
        }
        #expect(state == before)
        #expect(state.wireBytes == beforeBytes)
        #expect(state.history.knownSeq(of: createOp, by: members[1].id) == nil)
        #expect(state.journal == nil)
        // The real ack is recorded afterwards.
        _ = try state.transaction { (s) throws(DCGKAError) in
            try s.process(sender: members[1].id, seq: 1, body: ControlBody(fields: .ack(withoutSecret: false), directMessages: []), acked: createOp, mySeq: 2, keys: memberKeys, using: &rng)
        }
        #expect(state.history.knownSeq(of: createOp, by: members[1].id) == 1)
    }

    @Test("a malformed welcome is the added member's typed error; the other members never decode it")
    func malformedWelcome() throws {
        var (members, directory, rng) = Self.group(4, seed: 6, listed: 3)
        func keys(_ m: Member) -> KeyMaterial { KeyMaterial(prekeys: m.prekeys, peerBundles: directory) }
        let createSeq = members[0].nextSeq()
        let created = try members[0].state.create(
            bundles: [members[1].bundle, members[2].bundle], creatorBundle: members[0].bundle, groupNonce: Self.groupNonce, seq: createSeq,
            keys: keys(members[0]), using: &rng)
        _ = try members[1].state.process(
            sender: members[0].id, seq: createSeq, body: created.body, acked: nil, mySeq: members[1].nextSeq(),
            keys: keys(members[1]), using: &rng)
        let addSeq = members[0].nextSeq()
        let added = try members[0].state.add(members[3].bundle, seq: addSeq, welcomeContext: [], keys: keys(members[0]), using: &rng)
        guard case .add(let bundle, let welcome) = added.body.fields else {
            Issue.record("not an add")
            return
        }
        #expect(try welcome.decode().history.contains(OperationID(sender: members[0].id, seq: addSeq)))
        // The same add with the welcome's last byte flipped (length unchanged).
        var corrupted = welcome.bytes
        corrupted[corrupted.count - 1] ^= 0xFF
        var writer = WireWriter()
        writer.write(bundle)
        writer.writeLengthPrefixed(corrupted)
        writer.writeBool(added.body.epochConfirmation != nil)
        if let confirmation = added.body.epochConfirmation { writer.writeFixed(confirmation) }
        writer.write(added.body.viewHash)
        writer.writeArray(added.body.directMessages)
        let body = try ControlBody(kind: .add, payload: writer.bytes)

        // Member 1 needs only the bundle.
        let adder = members[0].id
        let member1Keys = keys(members[1])
        var member1 = members[1].state
        let output = try member1.transaction { (s) throws(DCGKAError) in
            try s.process(sender: adder, seq: addSeq, body: body, acked: nil, mySeq: 2, keys: member1Keys, using: &rng)
        }
        #expect(output.acknowledgment?.kind == .addAck)
        #expect(member1.members.contains(members[3].id))

        // The added member gets a typed error and keeps its (empty) state.
        var newcomer = members[3].state
        let before = newcomer
        let newcomerKeys = keys(members[3])
        #expect {
            try newcomer.transaction { (s) throws(DCGKAError) in
                try s.process(sender: adder, seq: addSeq, body: body, acked: nil, mySeq: 1, keys: newcomerKeys, using: &rng)
            }
        } throws: { error in
            if case DCGKAError.malformedWelcome = error { true } else { false }
        }
        #expect(newcomer == before)
    }

    @Test("control bodies and recipient tags round-trip; every truncation is a typed error")
    func controlBodyEncoding() throws {
        var (members, directory, rng) = Self.group(3, seed: 3)
        let created = try members[0].state.create(
            bundles: members.dropFirst().map(\.bundle), creatorBundle: members[0].bundle, groupNonce: Self.groupNonce, seq: 1,
            keys: KeyMaterial(prekeys: members[0].prekeys, peerBundles: directory), using: &rng)
        let payload = created.body.payload
        #expect(try ControlBody(kind: .create, payload: payload) == created.body)
        for cut in 0..<payload.count {
            #expect(throws: WireError.self) { try ControlBody(kind: .create, payload: Array(payload.prefix(cut))) }
        }
        for tag in [RecipientTag.position(0), .position(127), .position(128), .explicit(members[1].id)] {
            #expect(try RecipientTag(wireBytes: tag.wireBytes) == tag)
        }
        #expect(RecipientTag.position(5).wireBytes.count == 1)
        #expect(RecipientTag.position(200).wireBytes.count == 2)
    }

    @Test("a welcome-ack's flag byte: bit 0 without a secret, bit 1 fork evidence follows; without evidence it is one byte as before")
    func welcomeAckFlags() throws {
        for withoutSecret in [false, true] {
            var body = ControlBody(fields: .welcomeAck(withoutSecret: withoutSecret), directMessages: [])
            #expect(body.payload.first == (withoutSecret ? 1 : 0))
            #expect(try ControlBody(kind: .welcomeAck, payload: body.payload) == body)
            body.forkEvidence = Array(repeating: 7, count: 300)
            let payload = body.payload
            #expect(payload.first == (withoutSecret ? 3 : 2))
            #expect(try ControlBody(kind: .welcomeAck, payload: payload) == body)
            for cut in 0..<payload.count {
                #expect(throws: WireError.self) { try ControlBody(kind: .welcomeAck, payload: Array(payload.prefix(cut))) }
            }
            var unknown = payload
            unknown[0] |= 4
            #expect(throws: WireError.self) { try ControlBody(kind: .welcomeAck, payload: unknown) }
        }
        // Evidence longer than any fork pair is refused before it is read.
        var body = ControlBody(fields: .welcomeAck(withoutSecret: false), directMessages: [])
        body.forkEvidence = Array(repeating: 1, count: ControlBody.maximumForkEvidenceBytes + 1)
        #expect(throws: WireError.self) { try ControlBody(kind: .welcomeAck, payload: body.payload) }
    }

    /// A group of `count` created by member 0, its create processed by members 1 through `processedBy`.
    static func created(_ count: Int, seed: UInt64, processedBy last: Int) throws -> (members: [Member], keys: (Member) -> KeyMaterial, rng: SeededRandom) {
        var (members, directory, rng) = group(count, seed: seed)
        let keys = { (m: Member) in KeyMaterial(prekeys: m.prekeys, peerBundles: directory) }
        let created = try members[0].state.create(
            bundles: members.dropFirst().map(\.bundle), creatorBundle: members[0].bundle, groupNonce: groupNonce, seq: members[0].nextSeq(), keys: keys(members[0]), using: &rng)
        for i in 1...last {
            _ = try members[i].state.process(
                sender: members[0].id, seq: 1, body: created.body, acked: nil, mySeq: members[i].nextSeq(), keys: keys(members[i]), using: &rng)
        }
        return (members, keys, rng)
    }

    /// An add whose sender was no member in its own view as my history gives it (across an
    /// equivocator's fork), or that a cut dropped, is not in my history; its new member's
    /// welcome-ack records nothing and fails nothing, like an add-ack of it (it failed as
    /// "welcome-ack of an unknown add": `dcgka simulate --members 6 --operations 150 --seed 37
    /// --adversary`).
    @Test("a welcome-ack of an add that had no effect here records nothing and is no error")
    func welcomeAckOfAnAddWithoutEffect() throws {
        var (members, keys, rng) = try Self.created(3, seed: 5, processedBy: 1)
        let before = members[1].state
        let unknownAdd = OperationID(sender: members[0].id, seq: 7)
        let output = try members[1].state.process(
            sender: members[2].id, seq: 1, body: ControlBody(fields: .welcomeAck(withoutSecret: true), directMessages: []),
            acked: unknownAdd, mySeq: members[1].seq + 1, keys: keys(members[1]), using: &rng)
        #expect(output.senderSecret == nil && output.lost.isEmpty)
        #expect(members[1].state.history == before.history)
    }

    /// The simulator's malicious member splits an update's seeds: the members given another seed
    /// than the confirmed one refuse it and know whose ratchet they lost; the others follow.
    @Test("an update whose seeds are split is refused exactly by the members given another seed")
    func splitSeedsAreRefusedWhereTheyDiffer() throws {
        var (members, keys, rng) = try Self.created(4, seed: 6, processedBy: 3)
        let seq = members[0].nextSeq()
        let split = try members[0].state.updateSplittingSeeds(seq: seq, keys: keys(members[0]), split: [members[2].id], using: &rng)
        let op = OperationID(sender: members[0].id, seq: seq)
        for i in 1..<4 {
            let output = try members[i].state.process(
                sender: members[0].id, seq: seq, body: split.body, acked: nil, mySeq: members[i].nextSeq(), keys: keys(members[i]), using: &rng)
            if i == 2 {
                #expect(output.lost == [LostRatchet(member: members[0].id, operation: op, reason: .seedConfirmationFailed(op))])
                #expect(output.acknowledgment?.fields == .ack(withoutSecret: true))
            } else {
                #expect(output.lost.isEmpty && output.senderSecret == split.updateSecret, "member \(i) follows the confirmed seed")
            }
        }
    }

    @Test("the encoded state holds no seed after the operation and no member secret after its acknowledgment")
    func deletedSecretsAreGone() throws {
        var (members, directory, rng) = Self.group(3, seed: 4)
        func keys(_ m: Member) -> KeyMaterial { KeyMaterial(prekeys: m.prekeys, peerBundles: directory) }
        let created = try members[0].state.create(
            bundles: members.dropFirst().map(\.bundle), creatorBundle: members[0].bundle, groupNonce: Self.groupNonce, seq: members[0].nextSeq(), keys: keys(members[0]), using: &rng)
        #expect(members[0].state.nextSeed == nil)
        let pending = members[0].state.memberSecrets
        #expect(pending.count == 2)
        let out = try members[1].state.process(
            sender: members[0].id, seq: 1, body: created.body, acked: nil, mySeq: members[1].nextSeq(), keys: keys(members[1]), using: &rng)
        _ = try members[0].state.process(
            sender: members[1].id, seq: 1, body: try #require(out.acknowledgment), acked: OperationID(sender: members[0].id, seq: 1),
            mySeq: members[0].seq + 1, keys: keys(members[0]), using: &rng)
        let consumed = try #require(pending[MemberSecretKey(operation: OperationID(sender: members[0].id, seq: 1), member: members[1].id)])
        let encoded = members[0].state.wireBytes
        #expect(!containsRun(encoded, consumed.bytes))
        #expect(try DCGKAState(wireBytes: encoded) == members[0].state)
    }
}

/// §5.7 rules 2 and 3 (issue 8, item 1): seeds and update secrets are confirmed, so a member knows
/// exactly which ratchet it lost, whatever the cause.
@Suite("Seed and epoch confirmation") struct ConfirmationTests {
    /// Member 0 creates a group of three; member 1 processes the create; member 0 then updates.
    static func updated(seed: UInt64) throws -> (state: DCGKAState, update: OperationOutput, sender: MemberID, keys: KeyMaterial, seq: UInt64) {
        var (members, directory, rng) = KeyAgreementTests.group(3, seed: seed)
        func keys(_ m: Member) -> KeyMaterial { KeyMaterial(prekeys: m.prekeys, peerBundles: directory) }
        let createSeq = members[0].nextSeq()
        let created = try members[0].state.create(
            bundles: members.dropFirst().map(\.bundle), creatorBundle: members[0].bundle, groupNonce: KeyAgreementTests.groupNonce, seq: createSeq, keys: keys(members[0]), using: &rng)
        _ = try members[1].state.process(
            sender: members[0].id, seq: createSeq, body: created.body, acked: nil, mySeq: members[1].nextSeq(), keys: keys(members[1]), using: &rng)
        let updateSeq = members[0].nextSeq()
        let update = try members[0].state.update(seq: updateSeq, keys: keys(members[0]), using: &rng)
        #expect(update.body.seedConfirmation != nil && update.body.epochConfirmation?.count == 16)
        return (members[1].state, update, members[0].id, keys(members[1]), updateSeq)
    }

    @Test("a seed that does not match its confirmation is refused: no secret, the membership stays, the sender is named")
    func seedConfirmation() throws {
        var (state, update, sender, keys, seq) = try Self.updated(seed: 11)
        var body = update.body
        body.seedConfirmation = Bytes32([UInt8](repeating: 3, count: 32))!
        var rng = SeededRandom(seed: 1)
        let output = try state.process(sender: sender, seq: seq, body: body, acked: nil, mySeq: 2, keys: keys, using: &rng)
        #expect(output.acknowledgment?.fields == .ack(withoutSecret: true))
        #expect(output.senderSecret == nil && output.mySecret == nil)
        #expect(output.lost == [LostRatchet(member: sender, operation: OperationID(sender: sender, seq: seq), reason: .seedConfirmationFailed(OperationID(sender: sender, seq: seq)))])
    }

    @Test("an update secret that does not match its epoch confirmation is not used, and the loss is named")
    func epochConfirmation() throws {
        var (state, update, sender, keys, seq) = try Self.updated(seed: 12)
        var body = update.body
        body.epochConfirmation = [UInt8](repeating: 0, count: 16)
        var rng = SeededRandom(seed: 1)
        var honest = state
        var honestRNG = rng
        let output = try state.process(sender: sender, seq: seq, body: body, acked: nil, mySeq: 2, keys: keys, using: &rng)
        #expect(output.senderSecret == nil, "the sender's epoch is not started")
        #expect(output.mySecret != nil, "my own step is unaffected")
        #expect(output.lost.map(\.reason) == [.epochConfirmationFailed(OperationID(sender: sender, seq: seq))])
        #expect(state.lostRatchets == [sender])
        // The untouched update confirms.
        let fine = try honest.process(sender: sender, seq: seq, body: update.body, acked: nil, mySeq: 2, keys: keys, using: &honestRNG)
        #expect(fine.senderSecret == update.updateSecret)
        #expect(fine.lost.isEmpty && honest.lostRatchets.isEmpty)
    }
}
