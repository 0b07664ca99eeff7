import DCGKACrypto
import DCGKAEncoding
import GroupMessaging
import Testing

/// A state with several members, a sending chain, skipped keys in two epochs, non-default limits.
func sampleState() throws -> MessagingState {
    let configuration = MessagingConfiguration(maximumSkippedKeysPerSender: 50, maximumSkipPerMessage: 300)
    var a = MessagingState(suite: .suite1, configuration: configuration)
    var b = MessagingState(suite: .suite1, configuration: configuration)
    for (who, secret) in [(alice, filled(0x10)), (carol, filled(0x30))] {
        a.startEpoch(for: who, epoch: 5, updateSecret: secret)
        b.startEpoch(for: who, epoch: 5, updateSecret: secret)
    }
    b.startEpoch(for: bob, epoch: 1, updateSecret: filled(0x20))
    _ = try b.send(plaintext(0), as: bob)
    var sent: [Sent] = []
    for n in 0..<10 { sent.append(try a.send(plaintext(n), as: alice)) }
    _ = b.receive(sent[6])  // skips 0...5 of epoch 5
    a.startEpoch(for: alice, epoch: 200, updateSecret: filled(0x11))
    b.startEpoch(for: alice, epoch: 200, updateSecret: filled(0x11))
    for n in 0..<140 { sent.append(try a.send(plaintext(n), as: alice)) }
    _ = b.receive(sent.last!)  // skips 0...138 of epoch 200, the store keeps the newest 50
    _ = try a.send(plaintext(0), as: carol)
    let fromCarol = try a.send(plaintext(1), as: carol)
    _ = b.receive(fromCarol)
    return b
}

func expectWireError(_ bytes: [UInt8], _ what: @autoclosure () -> String = "") -> WireError? {
    do {
        let state = try MessagingState(wireBytes: bytes)
        Issue.record("decoded \(what()): \(state.knownMembers)")
        return nil
    } catch {
        return error  // typed: WireError
    }
}

@Suite struct EncodingTests {
    @Test func stateRoundTrip() throws {
        let state = try sampleState()
        #expect(state.skippedKeyCount(for: alice) == 50)
        #expect(state.skippedKeyCount(for: carol) == 1)
        let bytes = state.wireBytes
        let decoded = try MessagingState(wireBytes: bytes)
        #expect(decoded == state)
        #expect(decoded.wireBytes == bytes)
        #expect(decoded.configuration == MessagingConfiguration(maximumSkippedKeysPerSender: 50, maximumSkipPerMessage: 300))
        #expect(decoded.knownMembers == [alice, bob, carol])

        let empty = MessagingState(suite: .suite1)
        #expect(empty.wireBytes == [MessagingState.encodingVersion, 1, 0xE8, 0x07, 0xE8, 0x07, 0])
        #expect(try MessagingState(wireBytes: empty.wireBytes) == empty)
    }

    @Test func decodedStateKeepsWorking() throws {
        let configuration = MessagingConfiguration(maximumSkippedKeysPerSender: 10, maximumSkipPerMessage: 10)
        var (a, b) = pair(configuration: configuration)
        var sent: [Sent] = []
        for n in 0..<8 { sent.append(try a.send(plaintext(n), as: alice)) }
        let r61 = b.receive(sent[5])
        #expect(r61 == .success(plaintext(5)))
        var restoredB = try MessagingState(wireBytes: b.wireBytes)
        var restoredA = try MessagingState(wireBytes: a.wireBytes)
        for n in [7, 0, 3, 6, 1, 2, 4] { let r64 = restoredB.receive(sent[n]); #expect(r64 == .success(plaintext(n))) }
        let next = try restoredA.send(plaintext(8), as: alice)
        #expect(next.message.index == 8)
        let r67 = restoredB.receive(next)
        #expect(r67 == .success(plaintext(8)))
    }

    @Test func configurationIsClamped() throws {
        let state = MessagingState(
            suite: .suite1,
            configuration: MessagingConfiguration(maximumSkippedKeysPerSender: -3, maximumSkipPerMessage: Int.max))
        #expect(state.configuration.maximumSkippedKeysPerSender == 0)
        #expect(state.configuration.maximumSkipPerMessage == MessagingConfiguration.hardLimit)
        #expect(try MessagingState(wireBytes: state.wireBytes) == state)
    }

    @Test func nonCanonicalEncodingsAreRejected() throws {
        let state = try sampleState()
        let bytes = state.wireBytes
        let membersStart = 1 + 1 + 1 + 2 + 1  // version, suite, 50, 300 (2 bytes), member count
        #expect(bytes[membersStart - 1] == 3)

        #expect(expectWireError(bytes + [0]) == .trailingBytes(count: 1))
        var wrong = bytes; wrong[0] = 3
        #expect(expectWireError(wrong) == .unsupportedVersion(3))
        wrong = bytes; wrong[1] = 9
        #expect(expectWireError(wrong) == .unsupportedSuite(9))
        // A limit beyond the hard limit.
        var writer = WireWriter()
        writer.writeUInt8(MessagingState.encodingVersion); writer.writeUInt8(1)
        writer.writeVarint(UInt64(MessagingConfiguration.hardLimit + 1)); writer.writeVarint(0); writer.writeVarint(0)
        #expect(expectWireError(writer.bytes) == .lengthExceedsLimit(
            field: "maximum skipped keys per sender", limit: MessagingConfiguration.hardLimit,
            actual: UInt64(MessagingConfiguration.hardLimit + 1)))
        // A huge member count on a short input fails before allocating.
        writer = WireWriter()
        writer.writeUInt8(MessagingState.encodingVersion); writer.writeUInt8(1); writer.writeVarint(0); writer.writeVarint(0)
        writer.writeVarint(UInt64(MessagingState.maximumMembers))
        #expect(expectWireError(writer.bytes) == .truncated)

        // Hand-built single-member states.
        func oneMember(
            _ ids: [MemberID] = [alice], epoch: UInt64 = 5, next: UInt64 = 10,
            skipped: [(UInt64, UInt64)] = [(4, 7), (5, 2)], limit: UInt64 = 50
        ) -> [UInt8] {
            var w = WireWriter()
            w.writeUInt8(MessagingState.encodingVersion); w.writeUInt8(1); w.writeVarint(limit); w.writeVarint(UInt64(10))
            w.writeVarint(ids.count)
            for id in ids {
                w.write(id); w.writeVarint(epoch); w.writeVarint(next); w.write(filled(0xEE))
                w.writeVarint(skipped.count)
                for (e, i) in skipped {
                    w.writeVarint(e); w.writeVarint(i); w.write(filled(0xDD)); w.writeFixed([UInt8](repeating: 0xCC, count: 12))
                    w.writeUInt8(0)  // no envelope hash (a key skipped over, not kept for a pruned envelope)
                }
            }
            return w.bytes
        }
        let good = try MessagingState(wireBytes: oneMember())
        #expect(good.skippedKeyCount(for: alice) == 2)
        #expect(try MessagingState(wireBytes: oneMember([alice, bob])).knownMembers == [alice, bob])
        #expect(expectWireError(oneMember([bob, alice])) == .invalidValue(field: "messaging members order"))
        #expect(expectWireError(oneMember([alice, alice])) == .invalidValue(field: "messaging members order"))
        #expect(expectWireError(oneMember(skipped: [(5, 2), (4, 7)])) == .invalidValue(field: "skipped keys order"))
        #expect(expectWireError(oneMember(skipped: [(5, 2), (5, 2)])) == .invalidValue(field: "skipped keys order"))
        #expect(expectWireError(oneMember(skipped: [(5, 10)])) == .invalidValue(field: "skipped key position"))
        #expect(expectWireError(oneMember(skipped: [(6, 0)])) == .invalidValue(field: "skipped key position"))
        #expect(expectWireError(oneMember(limit: 1)) == .lengthExceedsLimit(
            field: "skipped message keys", limit: 1, actual: 2))
        // A non-minimal varint.
        wrong = oneMember()
        #expect(wrong[37] == 5)
        wrong.replaceSubrange(37...37, with: [0x85, 0x00])  // epoch 5 as two bytes
        #expect(expectWireError(wrong) == .nonCanonicalVarint)
    }

    @Test func everyTruncationIsATypedError() throws {
        let bytes = try sampleState().wireBytes
        for length in 0..<bytes.count {
            let error = expectWireError(Array(bytes.prefix(length)), "prefix \(length)")
            #expect(error != nil)
        }
    }

    @Test func randomInputsNeverCrash() throws {
        var rng = SeededRandom(seed: 7)
        let valid = try sampleState().wireBytes
        var decodedCount = 0
        for round in 0..<3_000 {
            let input: [UInt8]
            switch round % 3 {
            case 0:
                input = rng.bytes(Int(rng.next() % 200))
            case 1:
                // A valid prefix with random bytes after it, to reach the inner fields.
                let cut = Int(rng.next() % UInt64(valid.count))
                input = Array(valid.prefix(cut)) + rng.bytes(Int(rng.next() % 120))
            default:
                var mutated = valid
                for _ in 0...(rng.next() % 4) {
                    mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                input = mutated
            }
            do {
                let state = try MessagingState(wireBytes: input)
                decodedCount += 1
                #expect(state.wireBytes == input, "decoding must be canonical")
            } catch {
                _ = error as WireError
            }
            do {
                let message = try ApplicationCiphertext(wireBytes: input)
                #expect(message.wireBytes == input)
            } catch {
                _ = error as WireError
            }
        }
        #expect(decodedCount > 0)  // mutations of key bytes still decode
    }

    @Test func applicationCiphertextEncoding() throws {
        let message = ApplicationCiphertext(epoch: 300, index: 2, ciphertext: [9, 8, 7])
        #expect(message.wireBytes == [0xAC, 0x02, 0x02, 0x03, 9, 8, 7])
        #expect(try ApplicationCiphertext(wireBytes: message.wireBytes) == message)
        let bytes = message.wireBytes
        for length in 0..<bytes.count {
            #expect(throws: WireError.self) { try ApplicationCiphertext(wireBytes: Array(bytes.prefix(length))) }
        }
        #expect(throws: WireError.trailingBytes(count: 1)) { try ApplicationCiphertext(wireBytes: bytes + [0]) }
        var writer = WireWriter()
        writer.writeVarint(1); writer.writeVarint(0); writer.writeVarint(UInt64(ApplicationCiphertext.maximumCiphertextLength + 1))
        #expect(throws: WireError.self) { try ApplicationCiphertext(wireBytes: writer.bytes) }
        // A real one round-trips and still decrypts.
        var (a, b) = pair()
        let sent = try a.send(plaintext(1), as: alice)
        let wire = try ApplicationCiphertext(wireBytes: sent.message.wireBytes)
        let r199 = b.decrypt(wire, header: sent.header)
        #expect(r199 == .success(plaintext(1)))
    }
}
