import Foundation
import Testing
import DCGKATestSupport
import DCGKAEncoding
import RelayClient

// LAN discovery (NETWORK.md §14.2, issue 11 item 4) end to end: real `dcgka peer listen --lan`
// processes, each in its own network namespace on one bridge (NetworkLab), find each other by UDP
// multicast and link; nobody is given anyone's address.

@Suite("LAN sightings: each contact reported once, again when it moved or was gone")
struct LANSightingsTests {
    @Test("new, the same again, moved, gone and back", .timeLimit(.minutes(10)))
    func sightings() {
        let alice = MemberID(Bytes32([UInt8](repeating: 1, count: 32))!), bob = MemberID(Bytes32([UInt8](repeating: 2, count: 32))!)
        var sightings = LANSightings(lifetime: .seconds(10))
        let start = ContinuousClock.now
        let here = LANSighting(contact: alice, host: "10.0.0.1", port: 7448)
        let first = sightings.heard(here, at: start)
        #expect(first)
        let again = sightings.heard(here, at: start + .seconds(2))
        #expect(!again, "the same announcement again is no news")
        #expect(sightings.current(alice, at: start + .seconds(11)) == here)
        #expect(sightings.current(bob, at: start) == nil)
        let moved = LANSighting(contact: alice, host: "10.0.0.1", port: 7450)
        let movedIsNews = sightings.heard(moved, at: start + .seconds(4))
        #expect(movedIsNews, "another port is news")
        #expect(sightings.current(alice, at: start + .seconds(5)) == moved)
        #expect(sightings.current(alice, at: start + .seconds(15)) == nil, "not announced for longer than the lifetime: gone")
        let back = sightings.heard(moved, at: start + .seconds(15))
        #expect(back, "back after being gone is news")
        let other = sightings.heard(LANSighting(contact: bob, host: "10.0.0.2", port: 7448), at: start + .seconds(15))
        #expect(other)
    }
}

private extension Home {
    /// `dcgka peer listen --listen ADDRESS:PORT --lan`, once it listens.
    func listenOnLAN(_ address: String, port: Int = 7448) throws -> Spawned {
        let spawned = try spawn(["peer", "listen", "--listen", "\(address):\(port)", "--lan"])
        guard spawned.waitForOutput(timeout: 30, until: { $0.contains("listening on ") }) != nil else {
            spawned.stop(grace: 5)
            throw CLI.Failure("\(name): peer listen --lan did not start: \(spawned.result())")
        }
        return spawned
    }

    func texts(_ group: String) -> [String] { ((try? log(group)) ?? []).filter(\.isMessage).map(\.text) }
}

private let ipCommand = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// A route for multicast in each node's namespace, through its port on the bridge (a namespace
/// has no default route, and the kernel needs one to pick the interface of a group when the
/// device listens on every interface).
private func routeMulticast(_ lab: NetworkLab) throws {
    guard let ip = ipCommand else { throw CLI.Failure("no ip command") }
    for (node, host) in lab.nodes {
        let result = try CLI.run(["-n", lab.namespace(node), "route", "add", "224.0.0.0/4", "dev", "v\(host)"], executable: URL(fileURLWithPath: ip))
        guard result.succeeded else { throw CLI.Failure("multicast route for \(node): \(result)") }
    }
}

/// The established TCP connections in `node`'s namespace whose other end is at `address` (nil
/// when `ss` is not installed).
private func establishedConnections(_ lab: NetworkLab, in node: String, to address: String) throws -> [String]? {
    guard let ip = ipCommand,
          let ss = ["/usr/bin/ss", "/bin/ss", "/usr/sbin/ss", "/sbin/ss"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
    else { return nil }
    let result = try CLI.run(["netns", "exec", lab.namespace(node), ss, "-Htn", "state", "established"], executable: URL(fileURLWithPath: ip))
    guard result.succeeded else { throw CLI.Failure("ss in \(node): \(result)") }
    return result.stdout.split(separator: "\n").map(String.init).filter { line in
        line.split(separator: " ", omittingEmptySubsequences: true).last?.hasPrefix("\(address):") ?? false
    }
}

/// Polls `condition` every 100 ms for at most `timeout` seconds.
private func eventually(_ timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(100_000)
    }
    return try condition()
}

private func foundLines(_ output: String) -> [String] {
    output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("found ") }
}

@Suite("LAN discovery end to end in network namespaces (issue 11)", .serialized)
struct LANDiscoveryEndToEndTests {
    @Test("Alice and Bob find each other by multicast and link; Bob reads Alice's group without her address; Carol on Bob's host finds Bob; Mallory, who is not Alice's contact, is never linked",
          .timeLimit(.minutes(10)))
    func discovery() throws {
        if let reason = NetworkLab.unavailableReason {
            print("LANDiscovery: skipped: \(reason)")
            return
        }
        let lab = try NetworkLab(nodes: ["alice", "bob", "mallory"])
        defer { lab.tearDown() }
        try routeMulticast(lab)
        let scratch = try Scratch("lan")
        defer { scratch.remove() }
        var alice = try Home.create("alice", in: scratch)
        var bob = try Home.create("bob", in: scratch)
        var mallory = try Home.create("mallory", in: scratch)
        var carol = try Home.create("carol", in: scratch)
        alice.namespace = lab.namespace("alice")
        bob.namespace = lab.namespace("bob")
        mallory.namespace = lab.namespace("mallory")
        // Carol's device is on Bob's host: two listeners of one multicast group on one host
        // (SO_REUSEPORT), finding each other through the loopback of multicast.
        carol.namespace = lab.namespace("bob")
        try Home.introduce(alice, bob)
        try Home.introduce(bob, carol)
        // Mallory knows Alice's public key (a contact code she was shown), Alice does not know
        // her: Mallory can recognise Alice's announcements (the documented limit), Alice never
        // recognises hers, and Alice's listener refuses her.
        try mallory.must(["contact", "add", alice.code, "--name", "alice"])

        let group = try alice.createGroup("Desk", with: ["bob"])
        try alice.must(["send", "Desk", "alice: before we met"])

        let aliceListens = try alice.listenOnLAN(lab.address("alice"))
        defer { aliceListens.stop(grace: 5); aliceListens.cleanUp() }
        let bobListens = try bob.listenOnLAN(lab.address("bob"))
        defer { bobListens.stop(grace: 5); bobListens.cleanUp() }
        let carolListens = try carol.listenOnLAN(lab.address("bob"), port: 7450)
        defer { carolListens.stop(grace: 5); carolListens.cleanUp() }
        // Mallory listens on every interface: the kernel picks the one to the group (the route).
        let malloryListens = try mallory.listenOnLAN("0.0.0.0")
        defer { malloryListens.stop(grace: 5); malloryListens.cleanUp() }

        let aliceAt = "\(lab.address("alice")):7448", bobAt = "\(lab.address("bob")):7448", carolAt = "\(lab.address("bob")):7450"
        #expect(aliceListens.waitForOutput(timeout: 30) { $0.contains("found bob at \(bobAt)") } != nil, "Alice: \(aliceListens.result())")
        #expect(bobListens.waitForOutput(timeout: 30) { $0.contains("found alice at \(aliceAt)") } != nil, "Bob: \(bobListens.result())")

        // Bob, never given Alice's address, joins the group and reads it over the discovered link;
        // what Alice sends now is pushed live, and Bob's answer comes back.
        #expect(eventually(60) { bob.texts("Desk") == ["alice: before we met"] }, "Bob: \(bob.texts("Desk")); \(bobListens.result())")
        try alice.must(["send", "Desk", "alice: on the LAN"])
        #expect(eventually(30) { bob.texts("Desk").contains("alice: on the LAN") }, "Bob: \(bob.texts("Desk"))")
        try bob.must(["send", "Desk", "bob: and back"])
        #expect(eventually(30) { alice.texts("Desk").contains("bob: and back") }, "Alice: \(alice.texts("Desk"))")

        // Mallory recognised Alice (she knows her key) and tried; Alice never found her, and
        // Mallory got nothing. A few more announcement rounds pass first.
        #expect(malloryListens.waitForOutput(timeout: 30) { $0.contains("found alice at \(aliceAt)") } != nil, "Mallory: \(malloryListens.result())")
        sleep(8)
        let aliceOutput = aliceListens.stdout, bobOutput = bobListens.stdout
        #expect(foundLines(aliceOutput) == ["found bob at \(bobAt)"], "Alice found exactly Bob, once: \(aliceOutput)")
        #expect(foundLines(bobOutput).sorted() == ["found alice at \(aliceAt)", "found carol at \(carolAt)"],
                "Bob found exactly Alice and Carol, once each: \(bobOutput)")
        #expect(foundLines(carolListens.stdout) == ["found bob at \(bobAt)"], "Carol, on Bob's host, found him: \(carolListens.stdout)")
        #expect(bobOutput.contains("carol: linked") && carolListens.stdout.contains("bob: linked"), "\(bobOutput)\n\(carolListens.stdout)")
        // One link between Alice and Bob, not one from each side.
        let links = try establishedConnections(lab, in: "alice", to: lab.address("bob"))
        if let links { #expect(links.count == 1, "Alice and Bob are linked once: \(links)") }
        let malloryPrefix = String(mallory.id.prefix(12))
        #expect(!aliceOutput.split(separator: "\n").contains { $0.hasPrefix(malloryPrefix) && $0.contains("linked") },
                "Alice never linked with Mallory: \(aliceOutput)")
        #expect(try mallory.members(group) == nil, "Mallory knows nothing of the group")
        #expect(mallory.texts("Desk").isEmpty)
        print("LANDiscovery: links between Alice and Bob: \(links.map { "\($0.count)" } ?? "not counted (no ss)")")
        print("LANDiscovery: Alice:\n\(aliceOutput)Bob:\n\(bobOutput)Carol:\n\(carolListens.stdout)Mallory:\n\(malloryListens.stdout)")
    }
}
