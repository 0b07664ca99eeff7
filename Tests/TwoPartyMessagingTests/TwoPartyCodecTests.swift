import DCGKACrypto
import DCGKAEncoding
import Testing
import TwoPartyMessaging

@Suite("2SM encodings")
struct TwoPartyCodecTests {
    /// Messages and states from a conversation that exercises every header form.
    static func sampleConversation(seed: UInt64) throws -> (messages: [TwoPartyMessage], states: [TwoPartyState]) {
        var duo = Duo(seed: seed)
        var messages: [TwoPartyMessage] = []
        var states: [TwoPartyState] = duo.states + [TwoPartyState(peerPrekey: nil)]
        for (i, side) in [0, 0, 1, 0, 1, 1, 1, 0].enumerated() {
            let message = try duo.send(side, Array(repeating: UInt8(i), count: i * 30))
            messages.append(message)
            states.append(duo.states[side])
            _ = try duo.receive(1 - side, message)
            states.append(duo.states[1 - side])
        }
        _ = try duo.send(0, [])  // a state with an undelivered message
        states.append(duo.states[0])
        return (messages, states)
    }

    @Test func headerForms() throws {
        let prekey = PKEPublicKey(raw: b32(String(repeating: "ab", count: 32)))
        let me = try TwoPartyHeader(wireBytes: [1])
        #expect(me.origin == .me && me.index == nil && me.prekey == nil)
        let indexed = try TwoPartyHeader(wireBytes: [0, 0xAC, 0x02])
        #expect(indexed.origin == .other && indexed.index == 300 && indexed.prekey == nil)
        let toPrekey = try TwoPartyHeader(wireBytes: [0, 0] + prekey.bytes)
        #expect(toPrekey.origin == .other && toPrekey.index == 0 && toPrekey.prekey == prekey)
        var maxIndex = WireWriter()
        maxIndex.writeUInt8(0)
        maxIndex.writeVarint(TwoPartyHeader.maximumIndex)
        for header in [me, indexed, toPrekey, try TwoPartyHeader(wireBytes: maxIndex.bytes)] {
            try checkCodec(header)
        }
    }

    @Test func invalidHeaders() {
        for tag: UInt8 in [2, 3, 0x80, 0xFF] {
            #expect(throws: WireError.unknownTag(field: "2SM key origin", tag: tag)) { try TwoPartyHeader(wireBytes: [tag]) }
        }
        var tooLarge = WireWriter()
        tooLarge.writeUInt8(0)
        tooLarge.writeVarint(TwoPartyHeader.maximumIndex + 1)
        #expect(throws: WireError.lengthExceedsLimit(field: "2SM index", limit: Int(TwoPartyHeader.maximumIndex),
                                                     actual: TwoPartyHeader.maximumIndex + 1)) {
            try TwoPartyHeader(wireBytes: tooLarge.bytes)
        }
        #expect(throws: WireError.nonCanonicalVarint) { try TwoPartyHeader(wireBytes: [0, 0x81, 0x00]) }
        #expect(throws: WireError.trailingBytes(count: 1)) { try TwoPartyHeader(wireBytes: [1, 0]) }
        #expect(throws: WireError.truncated) { try TwoPartyHeader(wireBytes: [0, 0, 1, 2]) }
    }

    @Test func messagesAndStatesRoundTrip() throws {
        let (messages, states) = try Self.sampleConversation(seed: 41)
        #expect(Set(messages.map(\.header.origin)) == [.me, .other])
        #expect(messages.contains { $0.header.index == 0 })
        for message in messages {
            try checkCodec(message)
            try checkCodec(message.header)
            #expect(message.wireBytes == message.header.wireBytes + (UInt64(message.ciphertext.count).wireBytes) + message.ciphertext)
        }
        for state in states { try checkCodec(state) }
        try checkCodec(TwoPartyMessage(header: messages[0].header, ciphertext: []))
    }

    @Test func oversizedCiphertextLengthIsRejected() {
        var writer = WireWriter()
        writer.writeUInt8(1)
        writer.writeVarint(TwoPartyMessage.maximumCiphertextLength + 1)
        #expect(throws: WireError.lengthExceedsLimit(
            field: "2SM ciphertext", limit: TwoPartyMessage.maximumCiphertextLength,
            actual: UInt64(TwoPartyMessage.maximumCiphertextLength + 1))) {
            try TwoPartyMessage(wireBytes: writer.bytes)
        }
    }

    @Test func invalidStates() throws {
        var rng = SeededRandom(seed: 42)
        let k1 = PKESecretKey.generate(using: &rng), k2 = PKESecretKey.generate(using: &rng)
        func state(keys: [(UInt64, PKESecretKey)], next: UInt64, origin: UInt8, index: UInt64?) -> [UInt8] {
            var w = WireWriter()
            w.writeVarint(keys.count)
            for (i, k) in keys { w.writeVarint(i); w.write(k) }
            w.writeVarint(next)
            w.writeOptional(Optional<PKESecretKey>.none)
            w.writeOptional(Optional(k1.publicKey))
            w.writeUInt8(origin)
            w.writeOptional(index)
            return w.bytes
        }
        let good = try TwoPartyState(wireBytes: state(keys: [(1, k1), (3, k2)], next: 4, origin: 0, index: 7))
        #expect(good.mySecretKeys.keys.sorted() == [1, 3])
        #expect(good.otherKeyIndex == 7)
        _ = try TwoPartyState(wireBytes: state(keys: [], next: 1, origin: 1, index: nil))
        #expect(throws: WireError.invalidValue(field: "2SM key order")) {
            try TwoPartyState(wireBytes: state(keys: [(3, k1), (1, k2)], next: 4, origin: 0, index: 7))
        }
        #expect(throws: WireError.invalidValue(field: "2SM key order")) {
            try TwoPartyState(wireBytes: state(keys: [(2, k1), (2, k2)], next: 4, origin: 0, index: 7))
        }
        #expect(throws: WireError.invalidValue(field: "2SM key order"), "index 0 is the prekey, never in mySks") {
            try TwoPartyState(wireBytes: state(keys: [(0, k1)], next: 4, origin: 0, index: 7))
        }
        #expect(throws: WireError.invalidValue(field: "2SM next index")) {
            try TwoPartyState(wireBytes: state(keys: [(1, k1), (3, k2)], next: 3, origin: 0, index: 7))
        }
        #expect(throws: WireError.invalidValue(field: "2SM next index")) {
            try TwoPartyState(wireBytes: state(keys: [], next: 0, origin: 0, index: 0))
        }
        #expect(throws: WireError.invalidValue(field: "2SM other index")) {
            try TwoPartyState(wireBytes: state(keys: [], next: 1, origin: 1, index: 5))
        }
        #expect(throws: WireError.invalidValue(field: "2SM other index")) {
            try TwoPartyState(wireBytes: state(keys: [], next: 1, origin: 0, index: nil))
        }
        #expect(throws: WireError.unknownTag(field: "2SM key origin", tag: 2)) {
            try TwoPartyState(wireBytes: state(keys: [], next: 1, origin: 2, index: nil))
        }
        var tooMany = WireWriter()
        tooMany.writeVarint(TwoPartyState.maximumStoredKeys + 1)
        #expect(throws: WireError.lengthExceedsLimit(field: "2SM keys", limit: TwoPartyState.maximumStoredKeys,
                                                     actual: UInt64(TwoPartyState.maximumStoredKeys + 1))) {
            try TwoPartyState(wireBytes: tooMany.bytes)
        }
    }

    @Test func fuzzedDecoding() throws {
        let (messages, states) = try Self.sampleConversation(seed: 43)
        var rng = SeededRandom(seed: 44)
        let headers = messages.map(\.header.wireBytes) + [[1], [0, 5]]
        fuzzDecode(TwoPartyHeader.self, valid: headers, iterations: 3_000, using: &rng)
        let shortMessages = messages.filter { $0.ciphertext.count < 200 }.map(\.wireBytes)
        let acceptedMessages = fuzzDecode(TwoPartyMessage.self, valid: shortMessages, iterations: 3_000, using: &rng)
        #expect(acceptedMessages > 100)
        let acceptedStates = fuzzDecode(TwoPartyState.self, valid: states.map(\.wireBytes), iterations: 3_000, using: &rng)
        #expect(acceptedStates > 0)
    }
}
