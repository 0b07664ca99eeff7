import DCGKACrypto
import DCGKAEncoding
import Testing
import TwoPartyMessaging

/// Inputs the `twoparty` fuzz target found (Fuzz/Findings/twoparty/, FUZZING.md): 2SM states whose
/// key indices do not fit the header that would name them. They must not decode.
@Suite struct FuzzFindingTests {
    static func hex(_ string: String) -> [UInt8] {
        stride(from: 0, to: string.count, by: 2).map {
            let start = string.index(string.startIndex, offsetBy: $0)
            return UInt8(string[start..<string.index(start, offsetBy: 2)], radix: 16)!
        }
    }

    /// The saved inputs start with the target's mode byte (2: decode a state); the state follows.
    @Test("a state whose next index or other index passes the header's limit is refused, typed",
          arguments: [
            // otherKeyIndex above 2^48 (send then wrote a header that does not decode)
            ("0200020001ffffffffffff020001ffffffffffffff0202ffffff020001ffffffffffffff020001ffffffffffffff02", "2SM other index"),
            // nextIndex = 2^64 - 1 (send then trapped on overflow)
            ("0200ffffffffffffffffff010001b7a06527dbd7fb4d3b1223a9109d7d574223dc94c7b7f949ac1bc342e943884a000100", "2SM next index"),
          ])
    func refused(input: String, field: String) {
        #expect(throws: WireError.invalidValue(field: field)) { _ = try TwoPartyState(wireBytes: Array(Self.hex(input).dropFirst())) }
    }
}
