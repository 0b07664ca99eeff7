import Foundation
import Testing
import DCGKATestSupport
import DCGKAEncoding
import Device
import DeviceStorage

// The switching scenario of issue 11 (NETWORK.md §14, §15) end to end with separate processes in
// network namespaces this test creates: five people, a company relay and a home relay. All chat
// through the company relay; one member posts the home relay and devices pick it up by their
// policies; the company relay is killed mid-conversation while a member is added and another is
// removed concurrently; the home relay is killed and people link directly in a chain A—B—C—D
// (each runs in its own namespace and links only with its neighbours) and keep chatting, an
// update included; E, offline throughout, gets everything by a file from D.

private extension Home {
    func syncQuietly() throws { _ = try run(["sync", "--json"], timeout: 120) }

    func texts(_ group: String) -> [String] { ((try? log(group)) ?? []).filter(\.isMessage).map(\.text) }

    func say(_ group: String, _ text: String) throws { try must(["send", group, text]) }

    func relaysInUse() throws -> [String] {
        let object = try must(["relay", "list", "--json"]).object()
        return (object["relays"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
    }

    /// `dcgka peer listen` on `address:7448` (keeping links to `connect`), once it listens.
    func listen(on address: String, connect: [String] = []) throws -> Spawned {
        let spawned = try spawn(["peer", "listen", "--listen", "\(address):7448"] + (connect.isEmpty ? [] : ["--connect"] + connect))
        guard spawned.waitForOutput(timeout: 30, until: { $0.contains("listening on ") }) != nil else {
            spawned.stop(grace: 5)
            throw CLI.Failure("\(name): peer listen did not start: \(spawned.result())")
        }
        return spawned
    }

    /// The number of envelopes of a group in the home's log (read from its database).
    func logCount(_ group: String) throws -> Int {
        let device = Device(store: try SQLiteDeviceStore(path: databasePath), clock: { 0 }, random: SystemRandomNumberGenerator())
        return try device.log(of: GroupID(Bytes32(hex: group)!), after: 0, limit: 100_000).wires.count
    }
}

/// Polls `condition` every 100 ms for at most `timeout` seconds.
private func eventually(_ timeout: Double = 60, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(100_000)
    }
    return try condition()
}

@Suite("The switching scenario in network namespaces (issue 11)", .serialized)
struct SwitchingScenarioTests {
    @Test("company relay → home relay → a chain of direct links → a file; concurrent add and remove; nothing lost, exactly the intended readers",
          .timeLimit(.minutes(15)))
    func switching() throws {
        if let reason = NetworkLab.unavailableReason {
            print("SwitchingScenario: skipped: \(reason)")
            return
        }
        let lab = try NetworkLab(nodes: ["company", "home", "alice", "bob", "carol", "dave"])
        defer { lab.tearDown() }
        let scratch = try Scratch("switching")
        defer { scratch.remove() }
        var people: [String: Home] = [:]
        for name in ["alice", "bob", "carol", "dave", "erin"] {
            var home = try Home.create(name, in: scratch)
            if name != "erin" { home.namespace = lab.namespace(name) }
            people[name] = home
        }
        let alice = people["alice"]!, bob = people["bob"]!, carol = people["carol"]!, dave = people["dave"]!, erin = people["erin"]!
        let names = ["alice", "bob", "carol", "dave", "erin"]
        for (i, a) in names.enumerated() { for b in names[(i + 1)...] { try Home.introduce(people[a]!, people[b]!) } }
        let online = [alice, bob, carol, dave]
        func round(_ times: Int = 2) throws { for _ in 0..<times { for person in online { try person.syncQuietly() } } }

        let company = try RelayProcess.start(
            data: scratch.path("company"), listen: "\(lab.address("company")):7447", namespace: lab.namespace("company"))
        defer { company.stop(grace: 5) }
        let homeRelay = try RelayProcess.start(
            data: scratch.path("home-relay"), listen: "\(lab.address("home")):7447", namespace: lab.namespace("home"))
        defer { homeRelay.stop(grace: 5) }
        for person in online { try person.must(["relay", "add", company.address]) }
        try bob.must(["config", "relay-policy", "contacts"])
        try carol.must(["config", "relay-policy", "always"])

        // (1) Everyone chats through the company relay.
        let group = try alice.createGroup("Newsroom", with: ["bob", "carol", "dave"])
        try round()
        var sent: [String] = []
        for person in online {
            let text = "\(person.name): through the company relay"
            try person.say("Newsroom", text)
            sent.append(text)
        }
        try round()

        // (2) Alice posts the home relay; Bob (contacts) and Carol (always) take it up, Dave accepts it.
        try alice.must(["group", "relays", "Newsroom", "--set", homeRelay.address])
        try round()
        try dave.must(["relay", "accept", homeRelay.address])
        try round()
        for person in online { #expect(try person.relaysInUse().contains(homeRelay.address), "\(person) uses the home relay") }
        try bob.say("Newsroom", "bob: both relays carry it")
        sent.append("bob: both relays carry it")
        try round()

        // (3) Mid-conversation the company relay dies, while Alice adds Erin and Bob removes
        // Dave, neither knowing of the other's change.
        try carol.say("Newsroom", "carol: just before the company relay dies")
        sent.append("carol: just before the company relay dies")
        try carol.syncQuietly()
        company.crash()
        try alice.must(["group", "add", "Newsroom", "erin"])
        try bob.must(["group", "remove", "Newsroom", "dave"])
        try alice.say("Newsroom", "alice: the company relay is gone")
        sent.append("alice: the company relay is gone")
        try round(3)
        let beforeRemoval = sent

        // (4) The home relay dies too: a chain of direct links A—B—C—D, each only with its
        // neighbours (Alice makes passes with Bob; the others stay linked).
        homeRelay.crash()
        for (a, b) in [("alice", "carol"), ("alice", "dave"), ("bob", "dave")] { try lab.block(a, b) }
        let bobAddress = "\(lab.address("bob")):7448"
        let bobListens = try bob.listen(on: lab.address("bob"))
        defer { bobListens.stop(grace: 5); bobListens.cleanUp() }
        let carolListens = try carol.listen(on: lab.address("carol"), connect: [bobAddress])
        defer { carolListens.stop(grace: 5); carolListens.cleanUp() }
        let daveListens = try dave.listen(on: lab.address("dave"), connect: ["\(lab.address("carol")):7448"])
        defer { daveListens.stop(grace: 5); daveListens.cleanUp() }

        var afterRemoval: [String] = []
        try alice.say("Newsroom", "alice: over the chain")
        afterRemoval.append("alice: over the chain")
        try alice.must(["peer", "connect", bobAddress, "--peer", "bob"])
        #expect(eventually { carol.texts("Newsroom").contains("alice: over the chain") }, "Carol: \(carol.texts("Newsroom"))")
        try carol.must(["group", "update", "Newsroom"])
        try carol.say("Newsroom", "carol: after my update")
        afterRemoval.append("carol: after my update")
        try bob.say("Newsroom", "bob: on the chain")
        afterRemoval.append("bob: on the chain")
        #expect(eventually { bob.texts("Newsroom").contains("carol: after my update") }, "Bob: \(bob.texts("Newsroom"))")
        #expect(eventually { carol.texts("Newsroom").contains("bob: on the chain") }, "Carol: \(carol.texts("Newsroom"))")
        try alice.must(["peer", "connect", bobAddress])
        try alice.must(["peer", "connect", bobAddress])
        // Dave, removed, still carries the group's envelopes (he reads none of the new ones).
        let full = try bob.logCount(group)
        #expect(eventually { (try? dave.logCount(group)) ?? 0 >= full }, "Dave holds \((try? dave.logCount(group)) ?? 0) of \(full)")

        // (5) Erin, offline throughout, gets everything in a file from Dave.
        let file = scratch.path("for-erin.dcgka")
        try dave.must(["export", "--output", file, "--group", "Newsroom", "--for", "erin"])
        try erin.must(["import", file])

        // Identical views, nothing lost, exactly the intended readers.
        let all = Set(beforeRemoval + afterRemoval)
        let members = try alice.members(group).map { Set($0) }
        #expect(members == Set([alice.id, bob.id, carol.id, erin.id]), "Alice's view: \(String(describing: members))")
        for person in [alice, bob, carol, erin] {
            #expect(try person.members(group).map { Set($0) } == members, "\(person)'s view of the members")
        }
        for person in [alice, bob, carol] {
            #expect(Set(person.texts("Newsroom")) == all, "\(person) read \(person.texts("Newsroom"))")
        }
        let daveRead = Set(dave.texts("Newsroom"))
        #expect(daveRead.isSuperset(of: beforeRemoval.dropLast()), "Dave read \(daveRead)")
        #expect(daveRead.isDisjoint(with: afterRemoval), "Dave, removed, read \(daveRead.intersection(afterRemoval))")
        #expect(try dave.log("Newsroom").contains { $0.event == "removed-me" })
        let erinRead = Set(erin.texts("Newsroom"))
        #expect(erinRead.isSuperset(of: afterRemoval), "Erin read \(erinRead)")
        #expect(erinRead.isSubset(of: all))

        // (6) Bob turns malicious: a copy of his device shows Alice a message other than the one
        // his device sends the others at the same seq. The fork meets at Bob's link with Alice,
        // and the evidence travels on over the chain: Carol and Dave, who never saw Alice's
        // version, report it too.
        bobListens.stop(grace: 5)
        var clone = Home(name: "bob-clone", in: scratch)
        try FileManager.default.copyItem(atPath: bob.path, toPath: clone.path)
        clone.namespace = nil
        let bobAgain = try bob.listen(on: lab.address("bob"))
        defer { bobAgain.stop(grace: 5); bobAgain.cleanUp() }
        try bob.say("Newsroom", "bob: what everyone sees")
        try clone.say("Newsroom", "bob: what only Alice sees")
        let forked = scratch.path("forked.dcgka")
        try clone.must(["export", "--output", forked, "--group", "Newsroom", "--for", "alice"])
        try alice.must(["import", forked])
        #expect(alice.texts("Newsroom").contains("bob: what only Alice sees"))
        #expect(eventually { carol.texts("Newsroom").contains("bob: what everyone sees") }, "Carol: \(carol.texts("Newsroom"))")
        try alice.must(["peer", "connect", bobAddress])
        func reported(_ home: Home) -> Bool {
            ((try? home.log("Newsroom")) ?? []).contains { $0.event == "equivocation" && $0.fromID == bob.id }
        }
        #expect(reported(alice), "Alice: \(String(describing: try? alice.log("Newsroom")))")
        for person in [bob, carol, dave] {
            #expect(eventually(30) { reported(person) }, "\(person) reports Bob's equivocation")
        }
        #expect(!alice.texts("Newsroom").contains("bob: what everyone sees"), "the other side of the fork is evidence, not history")
        print("SwitchingScenario: \(all.count) messages; Erin read \(erinRead.count), Dave read \(daveRead.count); Dave carried \(full) envelopes; Bob's equivocation reported by Alice, Bob, Carol and Dave")
    }
}
