public import DCGKAEncoding
public import Testing

// Helpers shared by the test targets: hex literals, codec round-trip/truncation checks and
// decoder fuzzing (every decoder is total and canonical, §8).

public func hex(_ string: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(string.utf8)
    chars.removeAll { $0 == UInt8(ascii: " ") }
    precondition(chars.count % 2 == 0)
    for i in stride(from: 0, to: chars.count, by: 2) {
        out.append(UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16)!)
    }
    return out
}

/// Round trip, canonical re-encoding, every proper prefix is `.truncated`, one extra byte is trailing.
public func checkCodec<T: WireCodable & Equatable>(
    _ value: T, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let bytes = value.wireBytes
    let decoded = try T(wireBytes: bytes)
    #expect(decoded == value, sourceLocation: sourceLocation)
    #expect(decoded.wireBytes == bytes, sourceLocation: sourceLocation)
    for n in 0..<bytes.count {
        do {
            _ = try T(wireBytes: Array(bytes.prefix(n)))
            Issue.record("prefix of length \(n)/\(bytes.count) decoded", sourceLocation: sourceLocation)
        } catch {
            #expect(error == .truncated, "prefix \(n)", sourceLocation: sourceLocation)
        }
    }
    #expect(throws: WireError.trailingBytes(count: 1), sourceLocation: sourceLocation) {
        try T(wireBytes: bytes + [0])
    }
}

/// Random and mutated inputs: decoding either throws a `WireError` or yields a value whose
/// encoding is exactly the input (one encoding per value). Returns how many inputs decoded.
@discardableResult
public func fuzzDecode<T: WireCodable, R: RandomNumberGenerator>(
    _ type: T.Type, valid: [[UInt8]], iterations: Int, using rng: inout R,
    sourceLocation: SourceLocation = #_sourceLocation
) -> Int {
    let maxLength = max(8, (valid.map(\.count).max() ?? 0) * 2)
    var accepted = 0
    for i in 0..<iterations {
        var input: [UInt8]
        if valid.isEmpty || i % 3 == 0 {
            let length = Int.random(in: 0...maxLength, using: &rng)
            input = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
        } else {
            input = valid.randomElement(using: &rng)!
            let edits = Int.random(in: 1...3, using: &rng)
            for _ in 0..<edits {
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !input.isEmpty:  // flip one bit
                    let at = Int.random(in: 0..<input.count, using: &rng)
                    input[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                case 1 where !input.isEmpty:  // replace a byte
                    input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 2:  // insert a byte
                    input.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...input.count, using: &rng))
                case 3 where !input.isEmpty:  // delete a byte
                    input.remove(at: Int.random(in: 0..<input.count, using: &rng))
                default:  // cut
                    input = Array(input.prefix(Int.random(in: 0...input.count, using: &rng)))
                }
            }
        }
        do {
            let value = try T(wireBytes: input)
            accepted += 1
            if value.wireBytes != input {
                Issue.record("non-canonical input accepted: \(input)", sourceLocation: sourceLocation)
            }
        } catch {
            _ = error as WireError
        }
    }
    return accepted
}

public func b32(_ string: String) -> Bytes32 { Bytes32(hex(string))! }

public func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// Whether `needle` occurs as a contiguous run inside `haystack`.
public func containsRun(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
    }
    return false
}
