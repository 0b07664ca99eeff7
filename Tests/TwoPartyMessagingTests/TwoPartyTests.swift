import DCGKACrypto
import DCGKAEncoding
import Testing
import TwoPartyMessaging

@Suite("2SM conversations")
struct ConversationTests {
    @Test func oneDirectionalStream() throws {
        var duo = Duo(seed: 1)
        for i in 0..<50 {
            let message = try duo.exchange(0, "message \(i)")
            if i == 0 {
                #expect(message.header.origin == .other)
                #expect(message.header.index == 0)
                #expect(message.header.prekey == duo.bundles[1].prekey)
            } else {
                // Every later message goes to the key Alice generated and sent Bob in her previous one.
                #expect(message.header.origin == .me)
                #expect(message.header.index == nil)
                #expect(message.header.prekey == nil)
                #expect(message.header.wireBytes == [KeyOrigin.me.rawValue])
            }
        }
        #expect(duo.states[0].nextIndex == 51)
        #expect(duo.states[0].mySecretKeys.count == 50, "kept until Bob names one of them")
        #expect(duo.states[1].mySecretKeys.isEmpty)
        #expect(duo.states[1].nextIndex == 1)
        // Bob answers once, to Alice's newest key; that deletes all of Alice's older keys.
        let reply = try duo.exchange(1, "reply")
        #expect(reply.header.origin == .other)
        #expect(reply.header.index == 50)
        #expect(duo.states[0].mySecretKeys.isEmpty)
    }

    @Test func strictAlternation() throws {
        var duo = Duo(seed: 2)
        for round in 0..<50 {
            for side in 0..<2 {
                let message = try duo.exchange(side, "round \(round) from \(side)")
                if round == 0 && side == 0 {
                    #expect(message.header.index == 0)
                } else {
                    // Each message goes to the key the receiver most recently sent.
                    #expect(message.header.origin == .other)
                    let expected = UInt64(side == 0 ? round : round + 1)
                    #expect(message.header.index == expected)
                    #expect(message.header.prekey == nil)
                    // The receiver deleted every key with index <= the one just used.
                    #expect(duo.states[1 - side].mySecretKeys.keys.allSatisfy { $0 > expected })
                }
                #expect(duo.states[1 - side].mySecretKeys.isEmpty)
                #expect(duo.states[side].mySecretKeys.count == 1)
            }
        }
    }

    /// Both sides send whenever the seeded schedule says so; each direction is delivered in order,
    /// but sends and deliveries of the two directions interleave arbitrarily.
    @Test(arguments: [3, 4, 5, 6] as [UInt64])
    func concurrentSending(seed: UInt64) throws {
        var duo = Duo(seed: seed)
        var schedule = SeededRandom(seed: seed &* 1_000_003)
        var inFlight: [[(TwoPartyMessage, [UInt8])]] = [[], []]  // by sender
        var sent = [0, 0], delivered = [0, 0]
        var originsSeen = Set<KeyOrigin>()
        for step in 0..<400 {
            let action = Int.random(in: 0..<4, using: &schedule)
            let side = action % 2
            if action < 2 {
                let text = Array("\(side):\(sent[side]):\(step)".utf8)
                let message = try duo.send(side, text)
                originsSeen.insert(message.header.origin)
                inFlight[side].append((message, text))
                sent[side] += 1
            } else if let (message, text) = inFlight[side].first {
                inFlight[side].removeFirst()
                #expect(try duo.receive(1 - side, message) == text)
                delivered[side] += 1
            }
        }
        // Drain both directions, still interleaved.
        while !inFlight[0].isEmpty || !inFlight[1].isEmpty {
            let side = inFlight[0].isEmpty ? 1 : inFlight[1].isEmpty ? 0 : Int.random(in: 0..<2, using: &schedule)
            let (message, text) = inFlight[side].removeFirst()
            #expect(try duo.receive(1 - side, message) == text)
            delivered[side] += 1
        }
        #expect(delivered == sent)
        #expect(sent[0] > 50 && sent[1] > 50)
        #expect(originsSeen == [.me, .other])
        // After everything is delivered, a final round trip still works both ways.
        try duo.exchange(0, "after")
        try duo.exchange(1, "after")
        #expect(duo.states[0].mySecretKeys.isEmpty)
    }

    @Test func firstMessageIsToThePrekey() throws {
        var duo = Duo(seed: 7)
        let message = try duo.send(0, [1, 2, 3])
        #expect(message.header.origin == .other)
        #expect(message.header.index == 0)
        #expect(message.header.prekey == duo.bundles[1].prekey)
        #expect(message.header.wireBytes == [0, 0] + duo.bundles[1].prekey.bytes)
        #expect(message.ciphertext.count == Suite1().pkeOverhead + 1 + 3 + 32 + 1 + 32,
                "m (length-prefixed) ‖ skO ‖ index ‖ pk_i inside HPKE")
        #expect(try duo.receive(1, message) == [1, 2, 3])
        #expect(duo.states[1].otherKeyOrigin == .other)
        #expect(duo.states[1].otherKeyIndex == 1)
        #expect(duo.states[1].otherPublicKey == duo.states[0].mySecretKeys[1]?.publicKey)
        #expect(duo.states[1].receivedSecretKey?.publicKey == duo.states[0].otherPublicKey)
    }

    @Test func prekeyMessageNeedsThePrekeySecret() throws {
        var duo = Duo(seed: 8)
        let message = try duo.send(0, [1])
        // Bob's prekey has expired and been deleted (notAfter + grace passed).
        var expired = duo.prekeys[1]
        #expect(expired.deleteExpired(now: Duo.notAfter + 101) == 1)
        let error = duo.rejects(1, message, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: expired)
        #expect(error == .unknownPrekey)
        // A header naming some other prekey fails the same way.
        var other = message
        other.header.prekey = PKEPublicKey(raw: duo.rng.bytes32())
        #expect(duo.rejects(1, other, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: duo.prekeys[1]) == .unknownPrekey)
        #expect(try duo.receive(1, message) == [1])
    }

    @Test func receiveFirstInstance() throws {
        var duo = Duo(seed: 9, bobReceivesFirst: true)
        #expect(duo.states[1].otherPublicKey == nil)
        let before = duo.states[1]
        #expect(throws: TwoPartyError.noPeerKey) { try duo.send(1, [0]) }
        #expect(duo.states[1] == before)
        try duo.exchange(0, "hello")
        let reply = try duo.exchange(1, "hi")
        #expect(reply.header.origin == .other)
        #expect(reply.header.index == 1)
        for i in 0..<5 { try duo.exchange(i % 2, "more \(i)") }
    }

    @Test func replayOfAnOldCiphertextFails() throws {
        var duo = Duo(seed: 10)
        try duo.exchange(0, "prekey message")
        let chained = try duo.exchange(0, "sent to a key Alice made")    // origin .me
        let reply = try duo.exchange(1, "reply")                          // origin .other, index 2
        let indexed = try duo.exchange(0, "to Bob's key")                 // origin .other, index 1
        try duo.exchange(1, "another")
        try duo.exchange(0, "and another")
        #expect(chained.header.origin == .me)
        #expect(indexed.header.origin == .other && indexed.header.index == 1)

        let chainedError = duo.rejects(1, chained, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: duo.prekeys[1])
        #expect(chainedError == .decryptionFailed(.decryptionFailed), "the secret it needs was replaced")
        #expect(duo.rejects(1, indexed, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: duo.prekeys[1]) == .unknownKeyIndex(1))
        #expect(duo.rejects(0, reply, from: duo.ids[1], to: duo.ids[0], binding: duo.binding, prekeys: duo.prekeys[0]) == .unknownKeyIndex(2))
        // The channel is intact.
        try duo.exchange(1, "still fine")
        try duo.exchange(0, "still fine")
    }

    @Test func outOfOrderDeliveryFailsWithoutDamage() throws {
        var duo = Duo(seed: 11)
        let m1 = try duo.send(0, [1]), m2 = try duo.send(0, [2]), m3 = try duo.send(0, [3])
        #expect(duo.rejects(1, m2, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: duo.prekeys[1]) == .noReceivedKey)
        #expect(try duo.receive(1, m1) == [1])
        let error = duo.rejects(1, m3, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: duo.prekeys[1])
        #expect(error == .decryptionFailed(.decryptionFailed))
        #expect(try duo.receive(1, m2) == [2])
        #expect(try duo.receive(1, m3) == [3])
    }

    /// Every single-bit change of a message's wire form is rejected (by the decoder or by
    /// `receive`), leaves Bob's state unchanged, and the genuine message still decrypts after.
    @Test func tamperingFails() throws {
        var duo = Duo(seed: 12)
        var cases: [(bob: TwoPartyState, message: TwoPartyMessage, text: [UInt8])] = []
        for (k, text) in ["prekey", "chained", "indexed"].enumerated() {
            if k == 2 { try duo.exchange(1, "reply") }
            let message = try duo.send(0, Array(text.utf8))
            cases.append((duo.states[1], message, Array(text.utf8)))
            #expect(try duo.receive(1, message) == Array(text.utf8))
        }
        #expect(cases.map(\.message.header.origin) == [.other, .me, .other])
        #expect(cases.map(\.message.header.index) == [0, nil, 1])

        for (bobBefore, message, text) in cases {
            var bob = bobBefore
            let bytes = message.wireBytes
            var reachedReceive = 0
            for i in bytes.indices {
                for bit: UInt8 in [0x01, 0x40, 0x80] {
                    var bad = bytes
                    bad[i] ^= bit
                    guard let tampered = try? TwoPartyMessage(wireBytes: bad) else { continue }
                    reachedReceive += 1
                    _ = expectFailureLeavesStateUnchanged(&bob) { state throws(TwoPartyError) in
                        try state.receive(tampered, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: duo.prekeys[1])
                    }
                }
            }
            #expect(reachedReceive > bytes.count, "most single-bit changes still decode and reach receive")
            #expect(bob == bobBefore)
            #expect(try bob.receive(message, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: duo.prekeys[1]) == text)
        }
    }

    @Test func headerFieldChangesFail() throws {
        var duo = Duo(seed: 13)
        try duo.exchange(0, "a")
        try duo.exchange(1, "b")
        let message = try duo.send(0, [7])
        #expect(message.header.index == 1)
        var variants: [TwoPartyMessage] = []
        for change in 0..<4 {
            var m = message
            switch change {
            case 0: m.header.index = 2
            case 1: m.header.origin = .me; m.header.index = nil
            case 2: m.header.index = 0; m.header.prekey = duo.bundles[1].prekey
            default: m.ciphertext[m.ciphertext.count - 1] ^= 1
            }
            variants.append(m)
        }
        for variant in variants {
            _ = duo.rejects(1, variant, from: duo.ids[0], to: duo.ids[1], binding: duo.binding, prekeys: duo.prekeys[1])
        }
        #expect(try duo.receive(1, message) == [7])
    }

    @Test func bindingToGroupAndIdentities() throws {
        var duo = Duo(seed: 14)
        let stranger = IdentityKey.generate(using: &duo.rng).id
        let otherGroup = TwoPartyBinding(suite: .suite1, groupID: GroupID(duo.rng.bytes32()))
        #expect(otherGroup.info(sender: duo.ids[0], recipient: duo.ids[1]) != duo.binding.info(sender: duo.ids[0], recipient: duo.ids[1]))
        #expect(duo.binding.info(sender: duo.ids[0], recipient: duo.ids[1])
                == Array("DCGKA 2SM".utf8) + [1] + duo.binding.groupID.bytes + duo.ids[0].bytes + duo.ids[1].bytes)
        for step in 0..<3 {
            let message = try duo.send(0, [UInt8(step)])
            let attempts: [(MemberID, MemberID, TwoPartyBinding)] = [
                (duo.ids[0], duo.ids[1], otherGroup),   // another group
                (duo.ids[1], duo.ids[0], duo.binding),  // sender and recipient swapped
                (stranger, duo.ids[1], duo.binding),    // another sender
                (duo.ids[0], stranger, duo.binding),    // another recipient
            ]
            for (from, to, binding) in attempts {
                let error = duo.rejects(1, message, from: from, to: to, binding: binding, prekeys: duo.prekeys[1])
                #expect(error == .decryptionFailed(.decryptionFailed))
            }
            #expect(try duo.receive(1, message) == [UInt8(step)])
        }
    }

    /// Encrypts `plaintext` to Bob's prekey as if from Alice. Anyone can do this (HPKE base mode
    /// does not authenticate the sender); §6 signs envelopes so that only Alice's reach Bob.
    static func forged(_ duo: inout Duo, plaintext: [UInt8]) throws -> TwoPartyMessage {
        let header = try TwoPartyHeader(wireBytes: [0, 0] + duo.bundles[1].prekey.bytes)
        let ciphertext = try Suite1().pkeSeal(
            to: duo.bundles[1].prekey, info: duo.binding.info(sender: duo.ids[0], recipient: duo.ids[1]),
            aad: header.wireBytes, plaintext: plaintext, using: &duo.rng)
        return TwoPartyMessage(header: header, ciphertext: ciphertext)
    }

    static func plaintext(_ m: [UInt8], _ secret: PKESecretKey, index: [UInt8], _ key: PKEPublicKey) -> [UInt8] {
        var w = WireWriter()
        w.writeLengthPrefixed(m)
        w.write(secret)
        w.writeFixed(index)
        w.write(key)
        return w.bytes
    }

    @Test func malformedPlaintextIsRejectedWithoutChange() throws {
        var duo = Duo(seed: 15)
        let sk = PKESecretKey.generate(using: &duo.rng), pk = PKESecretKey.generate(using: &duo.rng).publicKey
        let cases: [([UInt8], WireError)] = [
            ([], .truncated),
            ([0], .truncated),
            ([1, 2, 3], .truncated),
            (Self.plaintext([7], sk, index: [5], pk) + [0], .trailingBytes(count: 1)),
            (Self.plaintext([7], sk, index: [0x85, 0x00], pk), .nonCanonicalVarint),
            // Index 0 names a prekey, never a key the sender generated.
            (Self.plaintext([7], sk, index: [0], pk), .invalidValue(field: "2SM sender index")),
            ([UInt8](repeating: 0, count: 66), .invalidValue(field: "2SM sender index")),
            // An index our reply header could not carry.
            (Self.plaintext([7], sk, index: (TwoPartyHeader.maximumIndex + 1).wireBytes, pk), .invalidValue(field: "2SM sender index")),
        ]
        for (plaintext, expected) in cases {
            let message = try Self.forged(&duo, plaintext: plaintext)
            #expect(duo.rejects(1, message) == .malformedPlaintext(expected))
        }
        // Well-formed: accepted (sender authentication is the envelope's job, §3.4 / §6).
        let largest = try Self.forged(&duo, plaintext: Self.plaintext([7], sk, index: TwoPartyHeader.maximumIndex.wireBytes, pk))
        #expect(try duo.receive(1, largest) == [7])
        #expect(duo.states[1].otherKeyIndex == TwoPartyHeader.maximumIndex)
        #expect(try duo.send(1, [1]).wireBytes.count > 0)
    }

    @Test func stateCodecMidConversationAndContinuing() throws {
        var duo = Duo(seed: 16)
        try checkCodec(duo.states[0])
        for i in 0..<7 { try duo.exchange(i % 3 == 0 ? 1 : 0, "warm-up \(i)") }
        let inFlight = try duo.send(0, [9])  // sent before the restore, delivered after it
        for side in 0..<2 { try checkCodec(duo.states[side]) }

        var restored = duo
        restored.states = try duo.states.map { try TwoPartyState(wireBytes: $0.wireBytes) }
        #expect(restored.states == duo.states)
        restored.prekeys = try duo.prekeys.map { try PrekeyStore(wireBytes: $0.wireBytes) }
        // The restored pair behaves exactly like the original: same randomness, same bytes.
        #expect(try duo.receive(1, inFlight) == [9])
        #expect(try restored.receive(1, inFlight) == [9])
        var transcriptA: [TwoPartyMessage] = [], transcriptB: [TwoPartyMessage] = []
        for i in 0..<10 {
            let side = i % 4 == 3 ? 1 : 0
            transcriptA.append(try duo.exchange(side, "after restore \(i)"))
            transcriptB.append(try restored.exchange(side, "after restore \(i)"))
        }
        #expect(transcriptA == transcriptB)
        #expect(restored.states == duo.states)
    }
}
