import DCGKACrypto
import DCGKAEncoding
import Testing
@testable import Link

/// The transport after the handshake: any plaintext in messages of at most 65535 bytes, in order,
/// once.
@Suite("Link transport")
struct LinkTransportTests {
    static func connected(seed: UInt64) throws -> (LinkTransport, LinkTransport) {
        var i = F.initiator(seed: seed)
        var r = F.responder(seed: seed)
        return try F.connect(&i, &r)
    }

    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var random = SeededRandom(seed: seed)
        return random.bytes(count)
    }

    @Test("a plaintext over 200 KB is split into several messages and reassembled, both ways")
    func largePlaintext() throws {
        var (a, b) = try Self.connected(seed: 100)
        let big = Self.bytes(210_000, seed: 1)
        let messages = try a.seal(big)
        #expect(messages.count == 4)  // ⌈210000 / 65519⌉
        #expect(messages.allSatisfy { $0.count <= 65535 })
        #expect(messages.dropLast().allSatisfy { $0.count == 65535 })
        #expect(messages.last?.count == 210_000 - 3 * 65519 + 16)
        var received: [UInt8] = []
        for message in messages { received += try b.open(message) }
        #expect(received == big)

        let back = Self.bytes(250_001, seed: 2)
        var echoed: [UInt8] = []
        for message in try b.seal(back) { echoed += try a.open(message) }
        #expect(echoed == back)

        // Interleaved small messages keep working in both directions.
        for n in 0..<20 {
            let text = Self.bytes(n * 13, seed: UInt64(n))
            for message in try a.seal(text) { #expect(try b.open(message) == text) }
            for message in try b.seal(text) { #expect(try a.open(message) == text) }
        }
    }

    @Test("exactly 65519 bytes fit one message; one more needs two; empty gives one empty message")
    func boundaries() throws {
        var (a, b) = try Self.connected(seed: 101)
        #expect(LinkTransport.maximumPlaintextBytes == 65519)
        let one = try a.seal(Self.bytes(65519, seed: 3))
        #expect(one.count == 1 && one[0].count == 65535)
        let two = try a.seal(Self.bytes(65520, seed: 4))
        #expect(two.map(\.count) == [65535, 17])
        let empty = try a.seal([])
        #expect(empty.map(\.count) == [16])
        for message in one + two { _ = try b.open(message) }
        #expect(try b.open(empty[0]) == [])
    }

    @Test("a sync byte stream carried through record framing in arbitrary pieces arrives whole")
    func throughRecordFraming() throws {
        var i = F.initiator(seed: 102)
        var r = F.responder(seed: 102)
        // The handshake itself travels framed.
        var (a, b) = try F.connect(&i, &r) { message in
            var reader = LinkRecordFraming()
            reader.append(try LinkRecordFraming.frame(message))
            return try #require(try reader.next())
        }
        var stream: [UInt8] = []
        var sent: [UInt8] = []
        for n in 0..<8 {
            let chunk = Self.bytes(n * 40_000 + 1, seed: UInt64(10 + n))
            sent += chunk
            stream += try LinkRecordFraming.frame(try a.seal(chunk))
        }
        var reader = LinkRecordFraming()
        var random = SeededRandom(seed: 5)
        var received: [UInt8] = []
        var offset = 0
        while offset < stream.count {
            let step = Int(random.next() % 70_000) + 1
            reader.append(stream[offset..<min(stream.count, offset + step)])
            offset += step
            while let message = try reader.next() { received += try b.open(message) }
            #expect(reader.bufferedBytes <= LinkRecordFraming.headerBytes + LinkRecordFraming.maximumRecordBytes)
        }
        #expect(received == sent)
        #expect(reader.isAtRecordBoundary)
    }

    @Test("a replayed transport message fails to open, and the transport is dead")
    func replay() throws {
        var (a, b) = try Self.connected(seed: 103)
        let first = try a.seal([1, 2, 3])[0]
        #expect(try b.open(first) == [1, 2, 3])
        #expect(throws: LinkError.decryptionFailed) { try b.open(first) }
        let next = try a.seal([4])[0]
        #expect(throws: LinkError.dead) { try b.open(next) }
        #expect(throws: LinkError.dead) { try b.seal([5]) }
    }

    @Test("reordered transport messages fail to open")
    func reorder() throws {
        var (a, b) = try Self.connected(seed: 104)
        let first = try a.seal([1])[0]
        let second = try a.seal([2])[0]
        #expect(throws: LinkError.decryptionFailed) { try b.open(second) }
        #expect(throws: LinkError.dead) { try b.open(first) }

        // A dropped message is noticed at the next one.
        var (c, d) = try Self.connected(seed: 105)
        _ = try c.seal([1])
        #expect(throws: LinkError.decryptionFailed) { try d.open(try c.seal([2])[0]) }
    }

    @Test("a message reflected back to its sender, or from another link, fails to open")
    func reflectionAndCrossLink() throws {
        var (a, _) = try Self.connected(seed: 106)
        let mine = try a.seal([7, 7])[0]
        #expect(throws: LinkError.decryptionFailed) { try a.open(mine) }

        var (c, _) = try Self.connected(seed: 107)
        var (_, f) = try Self.connected(seed: 108)
        #expect(throws: LinkError.decryptionFailed) { try f.open(try c.seal([1])[0]) }
    }

    @Test("a tampered, truncated or oversized transport message is refused")
    func tamperedTransport() throws {
        var (a, b) = try Self.connected(seed: 109)
        let message = try a.seal(Self.bytes(100, seed: 6))[0]
        for index in message.indices {
            var copy = b
            var tampered = message
            tampered[index] ^= 0x04
            #expect(throws: LinkError.decryptionFailed, "byte \(index)") { try copy.open(tampered) }
        }
        for length in [0, 1, 15] {
            var copy = b
            #expect(throws: LinkError.truncatedMessage) { try copy.open(Array(message.prefix(length))) }
        }
        var copy = b
        #expect(throws: LinkError.decryptionFailed) { try copy.open(Array(message.prefix(16))) }
        var oversized = b
        #expect(throws: LinkError.messageTooLarge(count: 65536)) { try oversized.open(Array(repeating: 0, count: 65536)) }
        #expect(throws: LinkError.dead) { try oversized.open(message) }
        #expect(try b.open(message) == Self.bytes(100, seed: 6))
    }

    @Test("the sender refuses nonce 2^64 − 1 and dies")
    func nonceExhaustion() throws {
        var (a, b) = try Self.connected(seed: 110)
        a.sender.setNonce(UInt64.max - 1)
        b.receiver.setNonce(UInt64.max - 1)
        #expect(try b.open(try a.seal([1])[0]) == [1])
        #expect(throws: LinkError.nonceExhausted) { try a.seal([2]) }
        #expect(throws: LinkError.dead) { try a.seal([3]) }
    }
}
