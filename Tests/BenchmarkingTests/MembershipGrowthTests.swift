import Benchmarking
import Testing

@Suite struct MembershipGrowthTests {
    /// The welcome stays small however many operations were settled; without folding it grows with
    /// every operation (the full measurement at n = 64 is in BENCHMARKS.md).
    @Test func theWelcomeDoesNotGrowWithSettledOperations() throws {
        let growth = try MembershipGrowth.measure(members: 8, operations: 400, seed: 3, every: 100)
        #expect(growth.membersAgree)
        let first = try #require(growth.samples.first), last = try #require(growth.samples.last)
        #expect(last.bytesUnfolded > 3 * first.bytesUnfolded)
        #expect(growth.maximumBytesFolded < 8 * 32 + 200)
        #expect(last.bytesFolded * 5 < first.bytesUnfolded)
    }

}
