#if DEBUG
@_spi(PlantedDefects) import DCGKAEncoding
import Simulator
import Testing

/// Issue 13, item 6: a check that no planted defect can trip is not a check. Each test plants one
/// defect (a task-local switch that exists in debug builds only) and shows that the simulator's
/// check for that class of defect reports it; the same run without the defect passes every check.
@Suite struct PlantedDefectTests {
    /// Small enough for a debug build; enough snapshots, updates and forgeries to meet every defect.
    static let configuration = SimulationConfiguration(
        members: 6, operations: 120, seed: 11, compromises: 6, forgeryRate: 12)

    /// The standard run, with forks signed by their senders' keys among the forgeries: the prev
    /// checks are what refuses them.
    static var keyed: SimulationConfiguration {
        var keyed = configuration
        keyed.keyedForgeries = true
        return keyed
    }

    static func run(planting defects: Set<PlantedDefect>, _ configuration: SimulationConfiguration = configuration) -> SimulationReport {
        PlantedDefects.$active.withValue(defects) { Simulation.run(configuration) }
    }

    @Test("without a planted defect the same runs pass every check")
    func baseline() {
        for configuration in [Self.updateHeavy, Self.removalHeavy] {
            let report = Self.run(planting: [], configuration)
            #expect(report.ok, "\(SimulationTests.describe(report))")
        }
        let report = Self.run(planting: [])
        #expect(report.ok, "\(SimulationTests.describe(report))")
        // Forks signed with their senders' keys make those senders equivocators where they arrive
        // (they are cut off there, so this run does not converge), but none is ever delivered.
        let keyed = Self.run(planting: [], Self.keyed)
        #expect(keyed.forgeriesInjected > 0 && keyed.forgeriesAccepted == 0, "\(SimulationTests.describe(keyed))")
        #expect(report.fsInventoryChecks > 0)
        #expect(report.fsKeyRecoveryChecks > 0)
        #expect(report.oracleChecks > 0)
        #expect(report.forgeriesInjected > 0)
    }

    /// More updates and snapshots, so that members reply to each other over 2SM between snapshots.
    static let updateHeavy = SimulationConfiguration(members: 8, operations: 200, seed: 3, messageShare: 0.5, compromises: 6)

    @Test("a kept 2SM key is found in the snapshot and lets the attacker recover old keys")
    func keptTwoPartyKey() {
        let report = Self.run(planting: [.keepUsedTwoPartyKey], Self.updateHeavy)
        #expect(report.fsInventoryViolations > 0, "\(SimulationTests.describe(report))")
        #expect(report.fsKeyRecoveryViolations > 0, "\(SimulationTests.describe(report))")
        #expect(!report.ok)
    }

    @Test("a kept message key or skipped key is found in the snapshot", arguments: [PlantedDefect.keepUsedMessageKey])
    func keptMessageKey(defect: PlantedDefect) {
        let report = Self.run(planting: [defect])
        #expect(report.fsInventoryViolations > 0, "\(SimulationTests.describe(report))")
        #expect(report.fsViolations > 0, "the seized ratchets open what was read: \(SimulationTests.describe(report))")
        #expect(!report.ok)
    }

    @Test("a kept seed or consumed member secret is found in the snapshot",
          arguments: [PlantedDefect.keepSeed, .keepConsumedMemberSecret])
    func keptDCGKASecret(defect: PlantedDefect) {
        let report = Self.run(planting: [defect], Self.updateHeavy)
        #expect(report.fsInventoryViolations > 0, "\(SimulationTests.describe(report))")
        if defect == .keepConsumedMemberSecret {
            // Old member secrets also complete the attacker's derivations.
            #expect(report.fsKeyRecoveryViolations > 0, "\(SimulationTests.describe(report))")
        }
        #expect(!report.ok)
    }

    @Test("ignoring step 3 of the strong-remove rule makes views differ from the oracle")
    func strongRemove() {
        let report = Self.run(planting: [.ignoreStrongRemoveStep3], Self.removalHeavy)
        #expect(report.oracleViolations > 0, "\(SimulationTests.describe(report))")
        #expect(!report.ok)
    }

    /// More removes and adds, so that a member is removed while it concurrently adds someone.
    static let removalHeavy = SimulationConfiguration(members: 8, operations: 160, seed: 5, messageShare: 0.3, compromises: 1)

    /// The delivery-time `prev` check is defence in depth: with receive's checks in place no
    /// envelope reaches delivery with a wrong `prev`, so it is planted together with them.
    @Test("skipped prev checks or a skipped signature check let forgeries in",
          arguments: [[PlantedDefect.skipPrevCheckAtReceive], [.skipPrevCheckAtReceive, .skipPrevCheckAtDelivery], [.acceptBadSignature]])
    func forgeries(defects: Set<PlantedDefect>) {
        let report = Self.run(planting: defects, Self.keyed)
        #expect(report.forgeriesAccepted > 0, "\(SimulationTests.describe(report))")
        #expect(!report.ok)
    }
}
#endif
