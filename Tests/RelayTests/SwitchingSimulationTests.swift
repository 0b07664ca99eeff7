import Foundation
import Testing
import NetworkSimulation

// `dcgka simulate --topology switching` (issue 11 item 6): the switching scenario, seeded, over
// the real device, sync and relay engines on memory links.

// One run at a time: each keeps the cooperative threads busy (every pass runs both devices'
// engines), and several at once starved in-process clients of other suites past their deadlines.
@Suite("The switching scenario simulated over the real engines (issue 11)", .serialized)
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
        #expect(report.checks.map(\.name) == [
            "identical views", "nothing lost", "exactly the intended readers", "secrets agree", "post-compromise security", "removed member",
        ])
        // Every second person beyond five is offline too, reached by the file's hops.
        let offline = 1 + (members - 5) / 2
        #expect(report.messages > 0 && report.passes > 0 && report.chain.count == members - offline)
        #expect(report.file.count == offline + 1 && report.chain.contains(report.file[0]), "\(report.file)")
    }

    @Test("with an adversary: a fork shown to one neighbour is reported by every honest member, forgeries are refused and kept nowhere",
          .timeLimit(.minutes(10)), arguments: [(5, 40, UInt64(1)), (6, 50, 3)])
    func adversary(_ members: Int, _ operations: Int, _ seed: UInt64) async throws {
        var configuration = SwitchingSimulation.Configuration(members: members, operations: operations, seed: seed)
        configuration.adversary = true
        let report = try await Self.run(configuration)
        #expect(report.ok, "\(report.summary)")
        #expect(report.adversary != nil && report.attacks == 4 && report.detected == report.attacks, "\(report.summary)")
        #expect(report.checks.map(\.name) == [
            "identical views", "nothing lost", "exactly the intended readers", "secrets agree", "post-compromise security", "removed member",
            "equivocation reported", "forgeries refused",
        ])
    }

    @Test("the post-compromise check can fail: without the healing update, the seized copy reads what follows", .timeLimit(.minutes(5)))
    func withoutHealing() async throws {
        var configuration = SwitchingSimulation.Configuration(members: 5, operations: 30, seed: 7)
        configuration.heals = false
        let report = try await Self.run(configuration)
        let check = report.checks.first { $0.name == "post-compromise security" }
        #expect(check?.ok == false, "\(report.summary)")
    }

    @Test("the adversary's checks can fail: the offline member, who never gets its file, never hears of the fork", .timeLimit(.minutes(5)))
    func adversaryUnreported() async throws {
        var configuration = SwitchingSimulation.Configuration(members: 5, operations: 30, seed: 7)
        configuration.adversary = true
        configuration.deliversFile = false
        let report = try await Self.run(configuration)
        let check = report.checks.first { $0.name == "equivocation reported" }
        #expect(check?.ok == false && check?.detail.contains("E") == true, "\(report.summary)")
        #expect(report.detected == report.attacks - 1)
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
    @Test("a link between the holders of the two sides of a fork ends (it asked for a gap only the refused side fills, for ever)",
          .timeLimit(.minutes(10)))
    func forkedChainLinkEnds() async throws {
        var network = try DeviceNetwork(["alice", "bob", "carol"], .init(storage: .files(in: nil)))
        defer { network.cleanUp() }
        let group = try network["alice"].createGroup(title: "G", with: [try network.id("bob"), try network.id("carol")])
        for _ in 0..<2 { try await network.pass("alice", "bob"); try await network.pass("alice", "carol") }
        var copy = try network.clone("bob")
        try network["bob"].send(text: "what everyone sees", to: group)
        try copy.send(text: "what only carol sees", to: group)
        try network.carry(try copy.exportFile(groups: [group], protection: .plain).bytes, to: "carol")
        // Bob's chain goes on past the fork; Carol can never take it, nor what depends on it.
        for text in ["after one", "after two", "after three"] { try network["bob"].send(text: text, to: group) }
        // Each pass returns (the time limit catches one that does not): before, the side
        // holding the fork asked again after every delivery for the gap below Bob's later envelopes.
        try await network.pass("alice", "bob")
        try await network.pass("alice", "carol")
        try await network.pass("bob", "carol")
        let bobID = try network.id("bob")
        #expect(try network.history("carol", group).contains { $0.event == "equivocation" && $0.sender == bobID })
        #expect(try network.history("bob", group).contains { $0.event == "equivocation" && $0.sender == bobID })
        #expect(try !network.texts("carol", group).contains("after one"))
        #expect(try network.texts("alice", group).contains("after three"))
    }

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
