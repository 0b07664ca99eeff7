import Foundation
import Testing
import NetworkSimulation

// `dcgka simulate --topology switching` (issue 11 item 6): the switching scenario, seeded, over
// the real device, sync and relay engines on memory links.

@Suite("The switching scenario simulated over the real engines (issue 11)")
struct SwitchingSimulationTests {
    static func run(_ configuration: SwitchingSimulation.Configuration) async throws -> SwitchingSimulation.Report {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-switching-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        return try await SwitchingSimulation(configuration).run(in: folder)
    }

    @Test("seeded runs: identical views, nothing lost, exactly the intended readers, the removed member reads nothing after",
          .timeLimit(.minutes(10)), arguments: [(5, 40, UInt64(1)), (5, 40, 2), (6, 50, 3), (7, 60, 4)])
    func seeded(_ members: Int, _ operations: Int, _ seed: UInt64) async throws {
        let report = try await Self.run(.init(members: members, operations: operations, seed: seed))
        #expect(report.ok, "\(report.summary)")
        #expect(report.checks.map(\.name) == ["identical views", "nothing lost", "exactly the intended readers", "removed member"])
        #expect(report.messages > 0 && report.passes > 0 && report.chain.count == members - 1)
    }

    @Test("the checks can fail: without the file, the offline member lacks everything and reads nothing it should", .timeLimit(.minutes(5)))
    func withoutTheFile() async throws {
        var configuration = SwitchingSimulation.Configuration(members: 5, operations: 30, seed: 7)
        configuration.deliversFile = false
        let report = try await Self.run(configuration)
        #expect(!report.ok)
        #expect(report.checks.first { $0.name == "nothing lost" }?.ok == false, "\(report.summary)")
        #expect(report.checks.first { $0.name == "identical views" }?.ok == false, "\(report.summary)")
    }
}

@Suite("DeviceNetwork: relays dying and coming back, links cut and restored")
struct DeviceNetworkTests {
    @Test("a dead relay answers nobody and keeps what it stored for when it is back; a cut link moves what it can, a whole pass the rest",
          .timeLimit(.minutes(5)))
    func topology() async throws {
        var network = try DeviceNetwork(["alice", "bob", "carol"])
        defer { network.cleanUp() }
        let relay = try network.addRelay("home")
        for name in ["alice", "bob"] { try network[name].addRelay(relay) }
        let group = try network["alice"].createGroup(title: "G", with: [try network.id("bob"), try network.id("carol")])
        try network["alice"].send(text: "one", to: group)
        #expect(try await network.sync("alice").count == 1)

        try network.killRelay("home")
        #expect(try await network.sync("bob").isEmpty, "nothing answers")
        #expect(try network.texts("bob", group).isEmpty)
        try network.reviveRelay("home")
        try await network.sync("bob")
        #expect(try network.texts("bob", group) == ["one"])

        // Carol uses no relay: a link to Bob cut after two messages, then whole passes.
        let (bobSide, carolSide) = try await network.pass("bob", "carol", budget: 2)
        #expect(bobSide == nil || carolSide == nil, "a cut pass does not finish")
        for _ in 0..<3 { try await network.pass("bob", "carol") }
        #expect(try network.texts("carol", group) == ["one"])
        #expect(try network.view("carol", group) == Set([try network.id("alice"), try network.id("bob"), try network.id("carol")]))
        #expect(network.cutPasses == 1 && network.passes == 6, "two relay passes (none with a dead relay) and four links")
    }
}
