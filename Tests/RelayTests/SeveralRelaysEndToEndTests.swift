import Foundation
import Testing
import DCGKATestSupport
import DCGKAEncoding
import Device
import DeviceStorage
import RelayStorage

// Several relays at once (NETWORK.md §14.1, §14.5; issue 11 items 1 and 2) with real processes on
// loopback: a company relay and a home relay, three homes driven by the README's commands.

extension Home {
    /// `dcgka sync --json`: one report per relay (an object for one relay, a list for several).
    /// Fails only when every relay failed, as the command does.
    fileprivate func syncAll(timeout: Double = 120) throws -> [[String: Any]] {
        let result = try run(["sync", "--json"], timeout: timeout)
        guard result.succeeded else { throw CLI.Failure("\(name): sync failed: \(result)") }
        let value = try result.json()
        if let one = value as? [String: Any] { return [one] }
        return value as? [[String: Any]] ?? []
    }

    fileprivate func relayList() throws -> (used: [[String: Any]], suggested: [[String: Any]]) {
        let object = try must(["relay", "list", "--json"]).object()
        return (object["relays"] as? [[String: Any]] ?? [], object["suggested"] as? [[String: Any]] ?? [])
    }

    fileprivate func messageTexts(_ group: String) throws -> [String] { try log(group).filter(\.isMessage).map(\.text) }
}

@Suite("Several relays end to end: a group moves from a company relay to a home relay (issue 11)", .serialized)
struct SeveralRelaysEndToEndTests {
    @Test("a member posts the home relay; devices take it up by policy; the home relay gets the whole history from the first member using it; the company relay dies and nothing is lost", .timeLimit(.minutes(10)))
    func companyToHome() async throws {
        let scratch = try Scratch("several-relays")
        defer { scratch.remove() }
        let company = try RelayProcess.start(data: scratch.path("company"))
        defer { company.stop() }
        let home = try RelayProcess.start(data: scratch.path("home"))
        defer { home.stop() }
        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        let carol = try Home.create("carol", in: scratch)
        for (a, b) in [(alice, bob), (alice, carol), (bob, carol)] { try Home.introduce(a, b) }
        for person in [alice, bob, carol] { try person.must(["relay", "add", company.address]) }
        // Carol uses her contacts' suggestions at once; Bob asks (the default).
        try carol.must(["config", "relay-policy", "contacts"])
        #expect(try bob.must(["config", "relay-policy"]).stdout.contains("relay-policy: ask"))

        // (1) Everyone talks through the company relay.
        let group = try alice.createGroup("Desk", with: ["bob", "carol"])
        for person in [alice, bob, carol, alice] { _ = try person.syncAll() }
        try bob.must(["send", "Desk", "bob: through the company"])
        _ = try bob.syncAll()

        // (2) Alice posts her home relay for the group; she uses it at once, for this group only.
        try alice.must(["group", "relays", "Desk", "--set", home.address])
        let aliceRelays = try alice.relayList().used
        #expect(aliceRelays.contains { $0["address"] as? String == home.address && ($0["groups"] as? [String]) == [group] }, "\(aliceRelays)")
        let aliceSync = try alice.syncAll()
        #expect(aliceSync.count == 2 && aliceSync.allSatisfy { $0["error"] == nil }, "\(aliceSync)")

        // Bob asks: the relay is suggested, not used, until he accepts it.
        _ = try bob.syncAll()
        let listed = try bob.relayList()
        #expect(listed.used.count == 1 && listed.suggested.map { $0["address"] as? String } == [home.address], "\(listed)")
        let shown = try bob.must(["group", "relays", "Desk"]).stdout
        #expect(shown.contains(home.address) && shown.contains("relay accept"), "\(shown)")
        try bob.must(["relay", "accept", home.address])
        #expect(try bob.relayList().suggested.isEmpty)
        // Carol takes it up by herself (a contact's suggestion).
        _ = try carol.syncAll()
        #expect(try carol.relayList().used.contains { $0["address"] as? String == home.address })
        for person in [alice, bob, carol, alice] { _ = try person.syncAll() }
        try carol.must(["send", "Desk", "carol: both relays carry it"])
        _ = try carol.syncAll()
        _ = try alice.syncAll()

        // (3) The company relay dies. Alice talks on; the home relay carries it to the others.
        company.crash()
        try alice.must(["send", "Desk", "alice: the company relay is gone"])
        let afterCrash = try alice.syncAll()
        #expect(afterCrash.count == 2 && afterCrash.filter { $0["error"] != nil }.count == 1, "one relay failed, one worked: \(afterCrash)")
        for person in [bob, carol] { _ = try person.syncAll() }
        let expected = ["bob: through the company", "carol: both relays carry it", "alice: the company relay is gone"]
        for person in [alice, bob, carol] {
            let texts = try person.messageTexts("Desk")
            #expect(texts == expected, "\(person): \(texts)")
        }

        // Alice's outbox: the company relay never confirmed her last message; the home relay did.
        let device = Device(store: try SQLiteDeviceStore(path: alice.databasePath), clock: { 0 }, random: SystemRandomNumberGenerator())
        let byRelay = Dictionary(try device.relays().map { ($0.address, $0.relay) }, uniquingKeysWith: { a, _ in a })
        #expect(try device.outboxCount(relay: byRelay[company.address]!) >= 1)
        #expect(try device.outboxCount(relay: byRelay[home.address]!) == 0)

        // The home relay holds every envelope of the group, those from before it was posted too.
        let log = try device.log(of: GroupID(Bytes32(hex: group)!), after: 0).wires
        home.stop()
        let store = try SQLiteRelayStore(path: (home.data as NSString).appendingPathComponent("relay.sqlite"))
        let held = try await store.holdings(of: GroupID(Bytes32(hex: group)!)).chains
        let heldCount = held.values.reduce(0) { $0 + $1.count }
        #expect(heldCount == log.count, "the home relay holds \(heldCount) of the group's \(log.count) envelopes")
    }

    @Test("dcgka demo --switching runs the scenario on loopback and shows what each person sees", .timeLimit(.minutes(5)))
    func switchingDemo() throws {
        let result = try CLI.run(["demo", "--switching"], timeout: 240)
        #expect(result.succeeded, "\(result)")
        let out = result.stdout
        for step in ["== (1)", "== (2)", "== (3)", "== (4)", "== (5)"] { #expect(out.contains(step), "\(step) missing") }
        // Erin, offline all along, reads what was sent over the chain; Dave, removed, does not.
        let erin = out.components(separatedBy: "--- what Erin sees").last?.components(separatedBy: "---").first ?? ""
        let dave = out.components(separatedBy: "--- what Dave sees").last?.components(separatedBy: "---").first ?? ""
        #expect(erin.contains("Carol: fresh keys, and still talking") && erin.contains("Alice: no relay left, this goes over the chain"), "\(erin)")
        #expect(!dave.contains("fresh keys") && dave.contains("removed you from the group"), "\(dave)")
        #expect(out.contains("Dave: Alice, Bob, Carol, Erin  (removed)"))
        #expect(out.contains("Erin: Alice, Bob, Carol, Erin"))
    }
}
