@_spi(Simulation) import Simulator
import Testing

/// `dcgka simulate --adversary` in the protocol topology (issue 8): one malicious member adds with
/// a low-order prekey, removes after its own removal, sends malformed, oversized and invented
/// welcomes, splits an update's seeds and equivocates (an add shown to half the members, an update
/// to the others); the clock passes every expiry. Every attack that reaches an honest member is
/// detected by it; the honest members' views and secrets agree; every honest message sent outside
/// the disrupted window is read by exactly its readers.
/// Seeds 37 and 43 found two faults (a welcome-ack of an add without effect here; a resync answer
/// withheld across the fork); `CutTests` holds the cut side's member that seeds 13 and 22 found.
@Suite struct AdversaryTests {
    static func run(seed: UInt64) -> SimulationReport {
        var configuration = SimulationConfiguration(members: 6, operations: 150, seed: seed)
        configuration.adversary = true
        return Simulation.run(configuration)
    }

    @Test("the malicious member's attacks are all detected and the honest members converge", arguments: [UInt64(1), 2, 3, 4, 37, 43])
    func attacksAreDetected(seed: UInt64) {
        let report = Self.run(seed: seed)
        #expect(report.ok, "\(SimulationTests.describe(report))")
        #expect(report.adversary && report.adversaryAttacks == 7)
        // The key, removal, split-seed and fork attacks reach several honest members, each lying
        // welcome its newcomer; every one of them detects it.
        #expect(report.adversaryDetected >= 3 * 3 + 3, "\(report.adversaryDetected) detections")
        #expect(report.viewsAgree && report.secretsAgree)
        #expect(report.missedDecryptions == 0 && report.unexpectedDecryptions == 0)
        #expect(report.resyncRequests > 0, "the two sides of the fork lose each other's ratchets and recover them")
    }
}
