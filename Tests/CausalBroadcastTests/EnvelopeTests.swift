import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import Testing

@Suite struct EnvelopeTests {
    let group = makeGroupID(1)

    @Test func signAndVerifyEveryKind() throws {
        var a = Sender(seed: 10, groupID: group)
        for kind in EnvelopeKind.allCases {
            let e = a.send(kind, acked: kind.isAcknowledgment ? EnvelopeReference(sender: MemberID(Bytes32([UInt8](repeating: 7, count: 32))!), seq: 1, hash: Bytes32([UInt8](repeating: 7, count: 32))!) : nil,
                           payload: Array("body \(kind)".utf8))
            #expect(e.hasValidSignature())
            #expect(e.version == 4)
            #expect(e.sender == a.id)
            #expect((e.prev != nil) == (e.seq > 1))
            #expect((e.acked != nil) == kind.isAcknowledgment)
            // The hash covers header and signature; the payload only through payloadHash.
            #expect(e.hash == Suite1().hash(Array(e.canonicalBytes.dropLast(2 + e.payloadCount))))
            #expect(e.payloadHash == Suite1().hash(e.payload ?? []))
            #expect((e.application != nil) == (kind == .application))
            let fromWire = try Envelope(wire: e.wireBytes, groupID: group)
            #expect(fromWire == e)
            #expect(fromWire.hash == e.hash && fromWire.payload == e.payload && fromWire.kind == kind)
            #expect(fromWire.canonicalBytes == e.canonicalBytes)
            #expect(fromWire.hasValidSignature())
            let fromCanonical = try Envelope(canonical: e.canonicalBytes)
            #expect(fromCanonical == e && fromCanonical.wireBytes == e.wireBytes)
            #expect(e.wireByteCount == e.wireBytes.count)
            #expect(e.canonicalByteCount == e.canonicalBytes.count)
        }
    }

    @Test func kindClassification() {
        #expect(EnvelopeKind.allCases.filter(\.isAcknowledgment) == [.ack, .addAck, .welcomeAck, .resyncAnswer])
        #expect(EnvelopeKind.allCases.filter(\.isAcknowledgeable) == [.create, .add, .remove, .update, .resync])
    }

    @Test func exactWireSizes() {
        var a = Sender(seed: 11, groupID: group)
        let first = a.send(.create, payload: [])
        // version 1 + suite 1 + sender 32 + seq 1 + kind 1 + payloadHash 32 + signature 64
        // + payload presence 1 + payload length 1.
        #expect(first.wireBytes.count == 134)
        #expect(first.canonicalBytes.count == 166)
        for _ in 2...127 {
            let ack = a.send(.ack, acked: first.reference)
            // + prev 32 + acked (sender 32, seq 1, hash 32).
            #expect(ack.wireBytes.count == 231)
            #expect(ack.canonicalBytes.count == 263)
        }
        let atSeq128 = a.send(.ack, acked: first.reference)
        #expect(atSeq128.wireBytes.count == 232)  // seq needs a second varint byte

        // An application envelope (seq 2 ... 127, epoch 1, index < 128, an hour of 3 bytes) adds
        // 171 bytes to a payload of up to 127 bytes, 172 bytes to one of 128 ... 16,383 bytes.
        var b = Sender(seed: 12, groupID: group)
        _ = b.send(.create)
        for size in [0, 1, 100, 127] {
            let e = b.send(.application, payload: [UInt8](repeating: 0xAB, count: size))
            #expect(e.wireBytes.count - size == 171)
            #expect(Envelope.wireOverhead(seq: e.seq, kind: .application, payloadCount: size) == 171)
            #expect(e.pruned().wireBytes.count == 170)  // header 105, signature 64, presence 0
        }
        let big = b.send(.application, payload: [UInt8](repeating: 1, count: 1000))
        #expect(big.wireBytes.count - 1000 == 172)
        #expect(Envelope.wireOverhead(seq: 1, kind: .application, payloadCount: 10) == 139)
        #expect(Envelope.wireOverhead(seq: 5, kind: .ack, payloadCount: 0) == 231)
    }

    @Test func wireLayout() {
        var a = Sender(seed: 13, groupID: group)
        let first = a.send(.add, payload: [9, 8, 7])
        let second = a.send(.ack, acked: first.reference, payload: [1])
        let w = second.wireBytes
        #expect(w[0] == 4)  // version
        #expect(w[1] == 1)  // suite 1
        #expect(Array(w[2..<34]) == a.id.bytes)
        #expect(w[34] == 2)  // seq varint
        #expect(Array(w[35..<67]) == first.hash.bytes)  // prev
        #expect(w[67] == EnvelopeKind.ack.rawValue)
        #expect(Array(w[68..<100]) == a.id.bytes)  // acked: sender, seq, hash
        #expect(w[100] == 1)
        #expect(Array(w[101..<133]) == first.hash.bytes)
        #expect(Array(w[133..<165]) == Suite1().hash([1]).bytes)  // payloadHash
        #expect(Array(w[165..<229]) == second.signature.bytes)
        #expect(Array(w[229...]) == [1, 1, 1])  // present, length, payload
        let c = second.canonicalBytes
        #expect(Array(c[0..<2]) + Array(c[34...]) == w)
        #expect(Array(c[2..<34]) == group.bytes)
    }

    @Test func decodingRejectsNonCanonicalInput() {
        var a = Sender(seed: 14, groupID: group)
        let e = a.send(.update, payload: [1, 2, 3])
        var w = e.wireBytes

        var v = w; v[0] = 1
        #expect(throws: WireError.unsupportedVersion(1)) { try Envelope(wire: v, groupID: group) }
        var s = w; s[1] = 9
        #expect(throws: WireError.unsupportedSuite(9)) { try Envelope(wire: s, groupID: group) }
        var k = w; k[35] = 10  // kind byte (seq 1: no prev)
        #expect(throws: WireError.unknownTag(field: "envelope.kind", tag: 10)) { try Envelope(wire: k, groupID: group) }
        var z = w; z[34] = 0
        #expect(throws: WireError.invalidValue(field: "envelope.seq")) { try Envelope(wire: z, groupID: group) }
        #expect(throws: WireError.trailingBytes(count: 1)) { try Envelope(wire: w + [0], groupID: group) }
        // A non-shortest seq varint.
        w.replaceSubrange(34...34, with: [0x81, 0x00])
        #expect(throws: WireError.nonCanonicalVarint) { try Envelope(wire: w, groupID: group) }
    }

    @Test func everyTruncationIsATypedError() {
        var a = Sender(seed: 15, groupID: group)
        let first = a.send(.create, payload: [1, 2, 3, 4])
        let second = a.send(.welcomeAck, acked: first.reference, payload: [5, 6])
        for e in [first, second] {
            let w = e.wireBytes, c = e.canonicalBytes
            for n in 0..<w.count {
                #expect(throws: WireError.self) { try Envelope(wire: Array(w[..<n]), groupID: group) }
            }
            for n in 0..<c.count {
                #expect(throws: WireError.self) { try Envelope(canonical: Array(c[..<n])) }
            }
        }
    }

    @Test func tamperedBytesNeverVerify() throws {
        var a = Sender(seed: 16, groupID: group)
        let first = a.send(.create, payload: [1, 2, 3])
        let e = a.send(.ack, acked: first.reference, payload: Array("hello".utf8))
        let w = e.wireBytes
        for i in w.indices {
            for flip: UInt8 in [0x01, 0x80] {
                var t = w
                t[i] ^= flip
                if let decoded = try? Envelope(wire: t, groupID: group) {
                    #expect(!decoded.hasValidSignature(), "byte \(i) flip \(flip)")
                    #expect(decoded.hash != e.hash)
                }
            }
        }
        // The group ID is signed even though it is not on the wire.
        let elsewhere = try Envelope(wire: w, groupID: makeGroupID(2))
        #expect(!elsewhere.hasValidSignature())
    }

    @Test func randomBytesGiveTypedErrors() {
        var rng = SeededRandom(seed: 0xDEC0DE)
        var a = Sender(seed: 17, groupID: group)
        let valid = [a.send(.create, payload: [1]), a.send(.ack, acked: .nowhere), a.send(.application, payload: [2, 3])]
        var decoded = 0
        for round in 0..<4000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = rng.bytes(Int(rng.next() % 300))
                if round % 4 == 0, !bytes.isEmpty { bytes[0] = Envelope.currentVersion; if bytes.count > 1 { bytes[1] = 1 } }
            } else {
                // Mutations of valid encodings reach deeper into the decoder.
                bytes = valid[round % valid.count].wireBytes
                for _ in 0..<(1 + rng.next() % 4) {
                    let i = Int(rng.next() % UInt64(bytes.count))
                    bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 3 == 0 { bytes.removeLast(Int(rng.next() % UInt64(bytes.count))) }
            }
            do {
                let e = try Envelope(wire: bytes, groupID: group)
                decoded += 1
                #expect(e.wireBytes == bytes)  // anything accepted is canonical
            } catch {
                _ = error as WireError
            }
            do {
                let e = try Envelope(canonical: bytes)
                #expect(e.canonicalBytes == bytes)
            } catch {
                _ = error as WireError
            }
            do {
                let f = try Frontier(wireBytes: bytes)
                #expect(f.wireBytes == bytes)
            } catch {
                _ = error as WireError
            }
        }
        #expect(decoded >= 0)
    }

    @Test func frontierRoundTripAndRejections() throws {
        var heads: [MemberID: Frontier.Head] = [:]
        for i in 0..<5 {
            let s = Sender(seed: 100 + UInt64(i), groupID: group)
            heads[s.id] = Frontier.Head(seq: UInt64(i * 100 + 1), hash: Bytes32([UInt8](repeating: UInt8(i), count: 32))!)
        }
        let f = Frontier(heads: heads)
        let bytes = f.wireBytes
        #expect(try Frontier(wireBytes: bytes) == f)
        #expect(bytes.count == 1 + 5 * 64 + 1 + 1 + 2 + 2 + 2)
        for n in 0..<bytes.count {
            #expect(throws: WireError.self) { try Frontier(wireBytes: Array(bytes[..<n])) }
        }
        // Unsorted senders are not canonical.
        let sorted = heads.keys.sorted()
        var swapped = [UInt8]([2])
        for id in [sorted[1], sorted[0]] {
            swapped += id.bytes + [1] + Bytes32.zero.bytes
        }
        #expect(throws: WireError.invalidValue(field: "frontier order")) { try Frontier(wireBytes: swapped) }
        #expect(throws: WireError.invalidValue(field: "frontier.seq")) {
            try Frontier(wireBytes: [1] + sorted[0].bytes + [0] + Bytes32.zero.bytes)
        }
    }
}
