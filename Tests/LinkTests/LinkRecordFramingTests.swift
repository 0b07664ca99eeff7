import DCGKACrypto
import Testing
@testable import Link

/// Records over a byte stream: `length (2 bytes, big-endian) ‖ Noise message`.
@Suite("Link record framing")
struct LinkRecordFramingTests {
    @Test("a record is the big-endian length then the message")
    func layout() throws {
        let message = [UInt8](repeating: 0xab, count: 300)
        #expect(try LinkRecordFraming.frame(message) == [0x01, 0x2c] + message)
        #expect(try LinkRecordFraming.frame([[1], [2, 3]]) == [0, 1, 1, 0, 2, 2, 3])
    }

    @Test("a 65535-byte message is the largest record; a longer message cannot be framed")
    func largest() throws {
        let largest = [UInt8](repeating: 5, count: 65535)
        let record = try LinkRecordFraming.frame(largest)
        #expect(record.prefix(2) == [0xff, 0xff])
        var reader = LinkRecordFraming()
        reader.append(record)
        #expect(try reader.next() == largest)
        // Two bytes cannot announce more than 65535: there is no larger record to refuse on read.
        #expect(throws: LinkError.messageTooLarge(count: 65536)) { try LinkRecordFraming.frame(Array(repeating: 0, count: 65536)) }
        #expect(throws: LinkError.messageTooLarge(count: 65536)) { try LinkRecordFraming.frame([[1], Array(repeating: 0, count: 65536)]) }
    }

    @Test("partial input gives nothing until the record is complete, byte by byte")
    func partial() throws {
        let messages = [[UInt8](repeating: 1, count: 16), [UInt8](repeating: 2, count: 1000), [UInt8](repeating: 3, count: 65535)]
        let stream = try LinkRecordFraming.frame(messages)
        var reader = LinkRecordFraming()
        var received: [[UInt8]] = []
        for byte in stream {
            reader.append([byte])
            if let message = try reader.next() { received.append(message) }
            #expect(try reader.next() == nil)
            #expect(reader.bufferedBytes <= 2 + 65535)
        }
        #expect(received == messages)
        #expect(reader.isAtRecordBoundary && reader.bufferedBytes == 0)

        var header = LinkRecordFraming()
        header.append([0xff])
        #expect(try header.next() == nil)
        header.append([0xff] + [UInt8](repeating: 0, count: 65534))
        #expect(try header.next() == nil)
        #expect(!header.isAtRecordBoundary && header.bufferedBytes == 65536)
        header.append([9])
        #expect(try header.next()?.count == 65535)
    }

    @Test("several records in one read come out one at a time and are dropped once returned")
    func many() throws {
        let messages = (0..<50).map { [UInt8](repeating: UInt8($0), count: 16 + $0 * 3) }
        var reader = LinkRecordFraming()
        reader.append(try LinkRecordFraming.frame(messages))
        var received: [[UInt8]] = []
        while let message = try reader.next() { received.append(message) }
        #expect(received == messages)
        #expect(reader.bufferedBytes == 0)
    }

    @Test("a record shorter than any link message is refused and the reader dies")
    func tooShort() throws {
        for length in [0, 1, 15] {
            var reader = LinkRecordFraming()
            reader.append([0, UInt8(length)] + [UInt8](repeating: 0, count: length))
            #expect(throws: LinkError.truncatedMessage) { try reader.next() }
            reader.append(try LinkRecordFraming.frame([UInt8](repeating: 0, count: 16)))
            #expect(throws: LinkError.dead) { try reader.next() }
        }
    }
}
