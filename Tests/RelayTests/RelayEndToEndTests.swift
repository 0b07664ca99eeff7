import Foundation
import Testing
import DCGKATestSupport
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import Device
import DeviceStorage
import Sync
import Relay
import RelayStorage
// For `RelayClient.connect`: the probes below are modified clients on a real link to the relay.
@testable import RelayClient

// End-to-end tests of the relay (issue 10; NETWORK.md §11–§13) with real processes only on
// loopback: `dcgka relay serve` (SQLite, or PostgreSQL with two relay processes on one database)
// and homes driven by the README's commands (`init`, `contact add`, `relay add`, `group create
// --with`, `send`, `sync`, `group add`, `group remove`, `log --json`, `log --follow`, `chat`).
// No envelope ever travels in a file here. Where a test plays a misbehaving member (a removed
// member posting anyway, a stranger asking for a group by its ID) it says so; everything else is
// what a user could type.

// MARK: - Helpers

/// `dcgka sync --json` for a home with one relay.
private struct SyncReport: CustomStringConvertible {
    var sent: Int
    var acknowledged: Int
    var received: Int
    var new: Int
    var invited: Int
    var joined: Int
    var invitations: Int
    var messages: Int
    var error: String?

    init(_ object: [String: Any]) {
        func int(_ key: String) -> Int { (object[key] as? NSNumber)?.intValue ?? -1 }
        sent = int("sent")
        acknowledged = int("acknowledged")
        received = int("received")
        new = int("new")
        invited = int("invited")
        joined = int("joined")
        invitations = int("invitations")
        messages = int("messages")
        error = object["error"] as? String
    }

    /// Nothing travelled either way.
    var isQuiet: Bool { sent == 0 && received == 0 }

    var description: String {
        "sent \(sent) (acknowledged \(acknowledged)), received \(received) (new \(new), messages \(messages)), invited \(invited), joined \(joined), invitations \(invitations)\(error.map { ", error: \($0)" } ?? "")"
    }
}

extension Home {
    /// `dcgka relay add ADDRESS`.
    fileprivate func use(_ relay: RelayProcess) throws {
        try must(["relay", "add", relay.address])
    }

    /// One `dcgka sync --json` pass that must succeed.
    @discardableResult
    fileprivate func sync(timeout: Double = 120) throws -> SyncReport {
        let result = try run(["sync", "--json"], timeout: timeout)
        guard result.succeeded else { throw CLI.Failure("\(name): sync failed: \(result)") }
        let report = SyncReport(try result.object())
        if let error = report.error { throw CLI.Failure("\(name): sync reported \(error)") }
        return report
    }

    /// The texts of the group's messages (not events), in the order the home shows them.
    fileprivate func texts(_ group: String) throws -> [String] {
        try log(group).filter(\.isMessage).map(\.text)
    }

    /// The home's own device, opened in this process (to read its log and outbox, or to play a
    /// modified client). Only while no `dcgka` process of the home writes, unless just reading.
    fileprivate func openDevice() throws -> Device<SystemRandomNumberGenerator> {
        Device(store: try SQLiteDeviceStore(path: databasePath), clock: { UInt64(Date().timeIntervalSince1970) }, random: SystemRandomNumberGenerator())
    }

    fileprivate var memberID: MemberID { MemberID(Bytes32(hex(id))!) }
}

private func groupID(_ text: String) -> GroupID { GroupID(Bytes32(hex(text))!) }

/// Syncs every home in turn until a whole round moves nothing (acknowledgments travel too);
/// returns the number of rounds.
@discardableResult
private func converge(_ homes: [Home], maximumRounds: Int = 8) throws -> Int {
    for round in 1...maximumRounds {
        var quiet = true
        for home in homes where !(try home.sync().isQuiet) { quiet = false }
        if quiet { return round }
    }
    throw CLI.Failure("\(homes) did not converge in \(maximumRounds) rounds of sync")
}


/// Seconds since `start`.
private func since(_ start: Date) -> Double { (Date().timeIntervalSince(start) * 100).rounded() / 100 }

/// A modified client: a real link (§12) to the relay as `identity`, sending scripted §11 messages
/// and recording everything the relay answers. Each step sends its messages and a `ping`, and
/// collects what arrives until the `pong` (the relay handles a link's messages in order, so the
/// pong marks the end of its answers, pushes queued before it included).
private enum LinkProbe {
    struct Step: Sendable {
        var messages: [SyncMessage]
        /// Blocking work to do first (another home sending, say), with the link open.
        var before: (@Sendable () throws -> Void)?

        init(_ messages: [SyncMessage], before: (@Sendable () throws -> Void)? = nil) {
            self.messages = messages
            self.before = before
        }
    }

    static func run(_ address: String, as identity: IdentityKey, _ steps: [Step], timeout: Duration = .seconds(90)) async throws -> [[SyncMessage]] {
        let relay = try RelayAddress(parsing: address)
        let device = Device(store: try SQLiteDeviceStore(path: nil), clock: { 0 }, random: SystemRandomNumberGenerator())
        let client = RelayClient(device: device, identity: identity)
        return try await client.connect(relay, timeout: timeout) { channel in
            var answers: [[SyncMessage]] = []
            var carried: [SyncMessage] = []
            var nonce: UInt64 = 0
            for step in steps {
                if let before = step.before { try await blocking(before) }
                nonce += 1
                try await channel.link.send(step.messages + [.ping(nonce)])
                var got = carried
                carried = []
                waiting: while true {
                    guard let messages = try await channel.receive() else {
                        throw CLI.Failure("the relay closed the probe's link; it had said \(answers) \(got)")
                    }
                    for (index, message) in messages.enumerated() {
                        if case .pong(let n) = message, n == nonce {
                            carried = Array(messages[(index + 1)...])
                            break waiting
                        }
                        got.append(message)
                    }
                }
                answers.append(got)
            }
            return answers
        }
    }
}

/// Envelopes (wire bytes) of a group among messages, whichever message carried them.
private func envelopeWires(_ messages: [SyncMessage], of group: GroupID) -> [[UInt8]] {
    messages.flatMap { message -> [[UInt8]] in
        switch message {
        case .envelopes(let g, let wires) where g == group, .push(let g, let wires) where g == group: wires
        case .evidence(let g, let first, let second) where g == group: [first, second]
        default: []
        }
    }
}

/// The messages with every mention of `group` replaced by `other` (to compare two answers).
private func replacing(_ group: GroupID, by other: GroupID, in messages: [SyncMessage]) -> [SyncMessage] {
    func swap(_ g: GroupID) -> GroupID { g == group ? other : g }
    return messages.map { message in
        switch message {
        case .have(let g, let frontier): .have(swap(g), frontier)
        case .invited(let groups): .invited(groups.map(swap))
        case .want(let g, let ranges, let hashes): .want(swap(g), ranges: ranges, hashes: hashes)
        case .summary(let g, let count, let bytes): .summary(swap(g), count: count, bytes: bytes)
        case .envelopes(let g, let wires): .envelopes(swap(g), wires)
        case .ack(let g, let hashes): .ack(swap(g), hashes)
        case .subscribe(let g): .subscribe(swap(g))
        case .push(let g, let wires): .push(swap(g), wires)
        case .pruned(let g, let ranges): .pruned(swap(g), ranges)
        case .evidence(let g, let a, let b): .evidence(swap(g), a, b)
        default: message
        }
    }
}

/// A removed member's modified client: signs, with the home's own identity key, an application
/// envelope that continues the home's chain in `group` (after everything it sent, its
/// acknowledgment of its own removal included) and writes it into the home's log as if the device
/// had sent it. The device itself refuses to send once it knows it was removed; `dcgka sync`
/// then hands the forged envelope to the relay like any other the relay lacks.
private func forgePost(in home: Home, group: String, text: String) throws -> Envelope {
    let device = try home.openDevice()
    let identity = try device.identityKey()
    let id = groupID(group)
    let now = UInt64(Date().timeIntervalSince1970)
    return try device.store.write { tx in
        let mine = try tx.logIndex(group: id).filter { $0.sender == identity.id }
        guard let newest = mine.max(by: { $0.seq < $1.seq }), let entry = try tx.logEntry(group: id, sender: identity.id, seq: newest.seq) else {
            throw CLI.Failure("\(home.name) has sent nothing in \(group)")
        }
        let previous = try Envelope(wire: entry.wire, groupID: id)
        // Epoch and index as the home's newest message had them, one further (members never get
        // as far as using them: a non-member's messages are not decrypted).
        var application = ApplicationFields(epoch: previous.seq, index: 0, hour: ApplicationFields.hour(ofSeconds: now))
        for candidate in mine.sorted(by: { $0.seq > $1.seq }) {
            guard let logged = try tx.logEntry(group: id, sender: identity.id, seq: candidate.seq),
                  let envelope = try? Envelope(wire: logged.wire, groupID: id), let fields = envelope.application else { continue }
            application = ApplicationFields(epoch: fields.epoch, index: fields.index + 1, hour: ApplicationFields.hour(ofSeconds: now))
            break
        }
        let forged = Envelope.sign(
            identity: identity, suite: previous.suite, groupID: id, seq: previous.seq + 1, prev: previous.hash, kind: .application,
            acked: nil, application: application, payload: Array(text.utf8))
        try tx.appendLog(LogRecord(
            group: id, sender: identity.id, seq: forged.seq, hash: forged.hash, kind: EnvelopeKind.application.rawValue,
            wire: forged.wireBytes, receivedAt: now))
        return forged
    }
}

/// What a relay's SQLite store (`DATA/relay.sqlite`) holds of a group: each sender's seqs.
/// Only once the relay process has ended.
private func relayHoldings(_ relay: RelayProcess, _ group: String) async throws -> [MemberID: [UInt64: Bytes32]] {
    let store = try SQLiteRelayStore(path: (relay.data as NSString).appendingPathComponent("relay.sqlite"))
    return try await store.holdings(of: groupID(group)).chains
}

// MARK: - Tests

@Suite("The relay end to end: real dcgka processes on loopback (issue 10)", .serialized)
struct RelayEndToEndTests {
    // a. Three people in separate homes use only the README's commands and one relay: a group is
    // created, one person added, one removed, and everybody chats; the group reaches invitees
    // through the relay (they never import a file), and all end with the same members and the
    // same messages.
    @Test("Three homes create, add, remove and chat through one relay", .timeLimit(.minutes(6)))
    func threePeopleThroughOneRelay() throws {
        let scratch = try Scratch("relay-three")
        defer { scratch.remove() }
        let relay = try RelayProcess.start(data: scratch.path("relay"))
        defer { relay.cleanUp() }
        let started = Date()

        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        let carol = try Home.create("carol", in: scratch)
        try Home.introduce(alice, bob)
        try Home.introduce(alice, carol)
        try Home.introduce(bob, carol)
        for home in [alice, bob, carol] { try home.use(relay) }

        let group = try alice.createGroup("Club", with: ["bob"])
        try alice.must(["send", "Club", "1 alice: hello bob"])
        let created = try alice.sync()
        #expect(created.sent >= 3 && created.acknowledged == created.sent, "\(created)")

        // Bob was invited while offline: his next sync finds the group through the relay alone,
        // and the same pass hands the relay his acknowledgment of the welcome.
        #expect(try bob.groups().isEmpty)
        let joined = try bob.sync()
        #expect(joined.invited == 1 && joined.joined == 1 && joined.messages >= 1, "\(joined)")
        #expect(joined.sent >= 1 && joined.acknowledged == joined.sent, "the pass pushed what joining produced: \(joined)")
        #expect(try bob.texts(group) == ["1 alice: hello bob"])
        try bob.must(["send", "Club", "2 bob: hi alice"])
        try bob.sync()

        try alice.sync()
        try alice.must(["group", "add", "Club", "carol"])
        try alice.must(["send", "Club", "3 alice: welcome carol"])
        try alice.sync()
        let carolJoined = try carol.sync()
        #expect(carolJoined.joined == 1, "\(carolJoined)")
        try carol.must(["send", "Club", "4 carol: hello both"])
        try carol.sync()
        try converge([alice, bob, carol])

        let three = Set([alice.id, bob.id, carol.id])
        for home in [alice, bob, carol] {
            let members = try home.members(group) ?? []
            #expect(Set(members) == three, "\(home) sees \(members)")
        }
        let before = ["1 alice: hello bob", "2 bob: hi alice", "3 alice: welcome carol", "4 carol: hello both"]
        #expect(try alice.texts(group) == before)
        #expect(try bob.texts(group) == before)
        // A newcomer reads from its add on (no history before it, NETWORK.md §11.1).
        #expect(try carol.texts(group) == ["3 alice: welcome carol", "4 carol: hello both"])

        // Bob removes Carol; the two others go on talking.
        try bob.sync()
        try bob.must(["group", "remove", "Club", "carol"])
        try bob.sync()
        try alice.sync()
        try alice.must(["send", "Club", "5 alice: just us now"])
        try alice.sync()
        try bob.sync()
        try bob.must(["send", "Club", "6 bob: indeed"])
        try converge([alice, bob, carol])

        let two = Set([alice.id, bob.id])
        #expect(Set(try alice.members(group) ?? []) == two)
        #expect(Set(try bob.members(group) ?? []) == two)
        #expect(try carol.groups()[group]?["member"] as? Bool == false, "Carol knows she was removed")
        let all = before + ["5 alice: just us now", "6 bob: indeed"]
        let aliceLog = try alice.log(group)
        let bobLog = try bob.log(group)
        #expect(aliceLog.filter(\.isMessage).map(\.text) == all)
        #expect(bobLog.filter(\.isMessage).map(\.text) == all)
        // The same messages: same senders, seqs and texts, on both sides.
        func signature(_ lines: [LogLine]) -> [String] {
            lines.filter(\.isMessage).map { "\($0.fromID ?? "?")#\($0.seq ?? -1) \($0.text)" }
        }
        #expect(signature(aliceLog) == signature(bobLog))
        let carolLog = try carol.log(group)
        #expect(carolLog.filter(\.isMessage).map(\.text) == ["3 alice: welcome carol", "4 carol: hello both"])
        #expect(carolLog.contains { $0.event == "removed-me" }, "\(carolLog)")
        for log in [aliceLog, bobLog, carolLog] { #expect(duplicateSeqs(log).isEmpty) }
        print("RelayEndToEnd a: three homes, \(since(started)) s")
    }

    // b. Someone who is not a participant gets nothing, even knowing the group's ID: a fourth home
    // that adds the relay and syncs has no group and no envelopes, and a modified client that
    // asks the relay for the group by its ID (hello, have, want, subscribe) gets exactly the
    // answer it gets for a group that does not exist (NETWORK.md §11.2, §13.3).
    @Test("A non-member who knows the group ID gets nothing, and learns nothing", .timeLimit(.minutes(5)))
    func nonMemberGetsNothing() async throws {
        let scratch = try Scratch("relay-stranger")
        defer { scratch.remove() }
        let relay = try RelayProcess.start(data: scratch.path("relay"))
        defer { relay.cleanUp() }

        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        let dave = try Home.create("dave", in: scratch)
        try Home.introduce(alice, bob)
        // Dave even knows Alice (she is his contact); he is just not in the group.
        try dave.must(["contact", "add", alice.code, "--name", "alice"])
        for home in [alice, bob, dave] { try home.use(relay) }
        let group = try alice.createGroup("Private", with: ["bob"])
        try alice.must(["send", "Private", "for bob only"])
        try alice.sync()
        try bob.sync()
        try converge([alice, bob])

        let report = try dave.sync()
        #expect(report.received == 0 && report.invited == 0 && report.joined == 0 && report.invitations == 0, "\(report)")
        #expect(try dave.groups().isEmpty)
        #expect(try dave.run(["log", group, "--json"]).isOneLineRefusal)

        // Dave's modified client asks for the group by its ID.
        let id = groupID(group)
        var random = SystemRandomNumberGenerator()
        let unknown = GroupID(Bytes32((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })!)
        let daveKey = try dave.openDevice().identityKey()
        let bobKey = try bob.openDevice().identityKey()
        func ask(_ g: GroupID, as key: IdentityKey) -> [SyncMessage] {
            [.hello(Hello(holder: key.id, groups: [g])), .have(g, Frontier()),
             .want(g, ranges: [SeqRange(sender: alice.memberID, from: 1, through: 1_000)], hashes: []), .subscribe(g)]
        }
        let aliceHome = alice
        let sendMore: @Sendable () throws -> Void = {
            try aliceHome.must(["send", "Private", "while they listen"])
            try aliceHome.sync()
        }
        let asked = try await LinkProbe.run(relay.address, as: daveKey, [.init(ask(id, as: daveKey)), .init([], before: sendMore)])
        let control = try await LinkProbe.run(relay.address, as: daveKey, [.init(ask(unknown, as: daveKey))])
        #expect(envelopeWires(asked.flatMap { $0 }, of: id).isEmpty, "\(asked)")
        #expect(!asked.flatMap { $0 }.contains { if case .invited = $0 { true } else if case .error = $0 { true } else { false } }, "\(asked)")
        // The very same answer as for a group that does not exist: the relay's hello, then an
        // empty `have`; nothing for `want` or `subscribe`; no push when Alice sends meanwhile.
        #expect(replacing(id, by: unknown, in: asked[0]) == control[0], "asked \(asked[0]) vs unknown \(control[0])")
        #expect(asked[0].count == 2 && asked[0].last == .have(id, Frontier()), "\(asked[0])")
        #expect(asked[1].isEmpty, "a push reached a non-member: \(asked[1])")

        // The same probe as Bob, a member, does get the group (so the probe can see what there is).
        let sendAgain: @Sendable () throws -> Void = {
            try aliceHome.must(["send", "Private", "bob is listening"])
            try aliceHome.sync()
        }
        let member = try await LinkProbe.run(relay.address, as: bobKey, [.init(ask(id, as: bobKey)), .init([], before: sendAgain)])
        #expect(envelopeWires(member[0], of: id).count >= 4, "\(member[0].count) messages")
        #expect(member[1].contains { if case .push(let g, let wires) = $0 { g == id && !wires.isEmpty } else { false } }, "\(member[1])")

        // And Dave's home still holds nothing.
        let after = try dave.sync()
        #expect(after.received == 0 && after.invited == 0, "\(after)")
        #expect(try dave.groups().isEmpty)
    }

    // c. What a relay can and cannot enforce about removed members. It cannot: its participants
    // are everyone a create or add ever named and never shrink (it does not process removes; it
    // could not order one against concurrent adds, NETWORK.md §13.3), so a removed member still
    // downloads the group's later envelopes and the relay still stores what it posts. The group
    // protocol enforces the rest end to end: the removed member reads nothing sent after its
    // removal (it has no keys for it), and what it posts after processing its removal is shown by
    // no member as a message (PROTOCOL.md §4.2: operations of non-members have no effect).
    @Test("A removed member still downloads but reads nothing; its later posts are stored but not shown", .timeLimit(.minutes(5)))
    func removedMemberAtTheRelay() async throws {
        let scratch = try Scratch("relay-removed")
        defer { scratch.remove() }
        let relay = try RelayProcess.start(data: scratch.path("relay"))
        defer { relay.cleanUp() }

        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        let carol = try Home.create("carol", in: scratch)
        try Home.introduce(alice, bob)
        try Home.introduce(alice, carol)
        try Home.introduce(bob, carol)
        for home in [alice, bob, carol] { try home.use(relay) }
        let group = try alice.createGroup("Club", with: ["bob", "carol"])
        try alice.must(["send", "Club", "before: hello all"])
        try alice.sync()
        try carol.sync()
        try carol.must(["send", "Club", "before: carol is here"])
        try converge([alice, bob, carol])
        #expect(try carol.texts(group) == ["before: hello all", "before: carol is here"])

        try alice.must(["group", "remove", "Club", "carol"])
        try alice.must(["send", "Club", "after: alice to bob"])
        try alice.sync()
        try bob.sync()
        try bob.must(["send", "Club", "after: bob to alice"])
        try converge([alice, bob])

        // Carol downloads the removal and everything after it: the relay cannot tell her out.
        let download = try carol.sync()
        #expect(download.received >= 4 && download.new == download.received, "remove, acknowledgments, two messages: \(download)")
        let carolLog = try carol.log(group)
        #expect(carolLog.contains { $0.event == "removed-me" }, "\(carolLog)")
        #expect(carolLog.filter(\.isMessage).map(\.text) == ["before: hello all", "before: carol is here"], "\(carolLog)")
        #expect(!carolLog.contains { $0.text.contains("after:") }, "\(carolLog)")
        #expect(try carol.groups()[group]?["member"] as? Bool == false)
        // Her own CLI refuses to post.
        let refused = try carol.run(["send", "Club", "after: carol tries"])
        #expect(refused.isOneLineRefusal, "\(refused)")
        try converge([alice, bob, carol])

        // Her modified client posts anyway; the relay stores it (acknowledged).
        let forged = try forgePost(in: carol, group: group, text: "after: carol's forged post")
        let posted = try carol.sync()
        #expect(posted.sent >= 1 && posted.acknowledged >= 1, "the relay stored the removed member's post: \(posted)")
        let aliceGot = try alice.sync()
        let bobGot = try bob.sync()
        #expect(aliceGot.received >= 1 && bobGot.received >= 1, "\(aliceGot); \(bobGot)")
        let carolID = carol.id
        for home in [alice, bob] {
            let log = try home.log(group)
            let lines = log.filter { $0.fromID == carolID && $0.seq == Int(forged.seq) }
            #expect(!lines.contains { $0.isMessage }, "\(home) shows the removed member's post as a message: \(lines)")
            #expect(lines.map(\.event) == ["non-member"], "\(home): \(lines)")
            #expect(!log.contains { $0.isMessage && $0.text.contains("forged") })
            #expect(log.filter(\.isMessage).map(\.text) == ["before: hello all", "before: carol is here", "after: alice to bob", "after: bob to alice"])
        }

        relay.stop()
        let held = try await relayHoldings(relay, group)
        #expect(held[carol.memberID]?[forged.seq] == forged.hash, "the relay holds the post")
        let store = try SQLiteRelayStore(path: (relay.data as NSString).appendingPathComponent("relay.sqlite"))
        #expect(try await store.participants(of: groupID(group))?.contains(carol.memberID) == true, "participants never shrink")
    }

    // d. A relay killed (SIGKILL) in the middle of a member's upload of a few hundred messages,
    // and stopped (SIGTERM) in the middle of another member's download, restarted each time on
    // the same folder and port: every envelope it acknowledged before the kill is still there
    // (it commits before it acknowledges), and after syncing again everyone has every message
    // exactly once.
    @Test("A relay killed and restarted mid-sync loses nothing", .timeLimit(.minutes(10)))
    func restartMidSync() async throws {
        let scratch = try Scratch("relay-restart")
        defer { scratch.remove() }
        let relay = try RelayProcess.start(data: scratch.path("relay"))
        defer { relay.cleanUp() }

        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        try Home.introduce(alice, bob)
        try bob.use(relay)
        // Alice writes while she has no relay yet: 400 messages of 30 kB, so her first sync is
        // long enough (several frames of 2 MiB, acknowledged one by one) to be cut.
        let group = try alice.createGroup("Load", with: ["bob"])
        let count = 400
        let texts = (0..<count).map { String(format: "load %03d ", $0) + String(repeating: "x", count: 30_000) }
        let writing = Date()
        let chat = try alice.run(["chat", "Load"], input: Data((texts.joined(separator: "\n") + "\n").utf8), timeout: 300)
        #expect(chat.succeeded, "\(chat)")
        print("RelayEndToEnd d: \(count) messages written in \(since(writing)) s")
        try alice.use(relay)

        let aliceDevice = try alice.openDevice()
        let aliceID = try aliceDevice.identityKey().id
        let id = groupID(group)
        func outbox() throws -> Int { try aliceDevice.store.read { try $0.outboxCount(relay: nil) } }
        let queued = try outbox()
        #expect(queued >= count + 2, "create, title and the messages wait for the relay: \(queued)")

        // Upload, killed after the first acknowledgment reached Alice.
        let upload = try alice.spawn(["sync", "--json"])
        defer { upload.stop(grace: 5); upload.cleanUp() }
        let uploadStarted = Date()
        var atKill = queued
        while upload.isRunning, since(uploadStarted) < 120 {
            atKill = try outbox()
            if atKill < queued { break }
            usleep(2_000)
        }
        relay.crash()
        #expect(upload.wait(timeout: 60))
        let cut = upload.result()
        let left = try outbox()
        let acknowledged = queued - left
        print("RelayEndToEnd d: SIGKILL \(since(uploadStarted)) s into Alice's upload, \(acknowledged) of \(queued) acknowledged, sync \(cut.succeeded ? "had finished" : "was cut")")
        #expect(atKill < queued, "Alice's sync saw an acknowledgment before the kill")
        #expect(left > 0 && !cut.succeeded, "the kill came in the middle of the upload: \(left) left; \(cut)")
        // Every acknowledged envelope survived the kill (the relay commits before it acknowledges).
        let heldAfterKill = try await relayHoldings(relay, group)[aliceID] ?? [:]
        print("RelayEndToEnd d: the killed relay had stored \(heldAfterKill.count) of Alice's envelopes")
        #expect(heldAfterKill.count >= acknowledged, "the relay holds \(heldAfterKill.count) of Alice's envelopes, \(acknowledged) were acknowledged")
        let aliceLog = try aliceDevice.store.read { tx in try tx.logIndex(group: id).filter { $0.sender == aliceID } }
        for (seq, hash) in heldAfterKill { #expect(aliceLog.contains { $0.seq == seq && $0.hash == hash }) }

        try relay.restart()
        let rest = try alice.sync()
        let leftAfter = try outbox()
        #expect(rest.acknowledged >= left && leftAfter == 0, "\(rest); outbox \(leftAfter)")

        // Download, stopped (SIGTERM) once Bob's device has committed part of it.
        let bobDevice = try bob.openDevice()
        func bobHolds() throws -> Int { try bobDevice.store.read { try $0.logCount(group: id) } }
        let download = try bob.spawn(["sync", "--json"])
        defer { download.stop(grace: 5); download.cleanUp() }
        let downloadStarted = Date()
        var partial = 0
        while download.isRunning, since(downloadStarted) < 120 {
            partial = try bobHolds()
            if partial > 0 { break }
            usleep(2_000)
        }
        let stopped = relay.stop()
        #expect(stopped.status == 0 && !stopped.signaled, "SIGTERM is a graceful stop: \(stopped)")
        #expect(download.wait(timeout: 60))
        let downloadCut = download.result()
        print("RelayEndToEnd d: SIGTERM \(since(downloadStarted)) s into Bob's download, \(partial) envelopes held then, \(try bobHolds()) at its end; sync \(downloadCut.succeeded ? "had finished" : "was cut")")
        #expect(partial > 0 && !downloadCut.succeeded, "the stop came in the middle of the download: \(downloadCut)")

        try relay.restart()
        try converge([bob, alice])
        // Every message, in order, once each (compared whole; only their starts are printed).
        let bobTexts = try bob.texts(group)
        let aliceTexts = try alice.texts(group)
        let bobHasAll = bobTexts == texts, aliceHasAll = aliceTexts == texts
        #expect(bobHasAll, "Bob has \(bobTexts.count) of \(count): \(bobTexts.map { $0.prefix(8) })")
        #expect(aliceHasAll, "Alice shows \(aliceTexts.count) of \(count): \(aliceTexts.map { $0.prefix(8) })")
        #expect(duplicateSeqs(try bob.log(group)).isEmpty)
        let drained = try outbox()
        #expect(drained == 0)

        // Acknowledgments lost with a killed relay (it had committed, the `ack` never left): the
        // entries they would have cleared wait in the outbox, as here for Alice's last three
        // envelopes, until the relay's `have` shows it holds them.
        let lastThree = aliceDevice.store
        try lastThree.write { tx in
            for entry in try tx.logIndex(group: id).filter({ $0.sender == aliceID }).sorted(by: { $0.seq < $1.seq }).suffix(3) {
                try tx.addToOutbox(group: id, hash: entry.hash)
            }
        }
        let simulated = try outbox()
        #expect(simulated == 3)
        let confirming = try alice.sync()
        let waiting = try outbox()
        #expect(confirming.sent == 0 && waiting == 0, "the relay's have confirmed them: \(confirming); outbox \(waiting)")
        let bobID = bob.memberID
        relay.stop()
        let final = try await relayHoldings(relay, group)
        let aliceChain = try aliceDevice.store.read { tx in try tx.logIndex(group: id).filter { $0.sender == aliceID } }
        #expect(Set(final[aliceID]?.keys.map { $0 } ?? []) == Set(aliceChain.map(\.seq)) && aliceChain.count >= count + 2, "the relay holds Alice's whole chain")
        #expect(final[bobID]?.isEmpty == false, "and Bob's acknowledgments")
        print("RelayEndToEnd d: total \(since(writing)) s")
    }

    // e. Two relay processes on one PostgreSQL database (same folder, so the same relay identity,
    // on two ports): Alice syncs only with process 1, Bob only with process 2, and they converse
    // both ways; Bob's `log --follow`, linked to process 2, shows within seconds what Alice sent
    // through process 1 (LISTEN/NOTIFY tells process 2, which pushes it).
    @Test("Two relay processes on one PostgreSQL database", .timeLimit(.minutes(6)))
    func twoRelayProcessesOnPostgres() throws {
        let scratch = try Scratch("relay-postgres")
        defer { scratch.remove() }
        let postgres = try PostgresServer.start()
        defer { postgres.stop() }
        let options = RelayProcess.loopbackOptions + ["--store", postgres.url]
        let first = try RelayProcess.start(data: scratch.path("relay"), options: options)
        defer { first.cleanUp() }
        let second = try RelayProcess.start(data: scratch.path("relay"), options: options)
        defer { second.cleanUp() }
        #expect(first.relayID == second.relayID && first.port != second.port, "\(first.address) \(second.address)")

        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        try Home.introduce(alice, bob)
        try alice.use(first)
        try bob.use(second)
        let group = try alice.createGroup("Shared", with: ["bob"])
        try alice.must(["send", "Shared", "alice via process 1"])
        try alice.sync()
        let joined = try bob.sync()
        #expect(joined.joined == 1, "\(joined)")
        #expect(try bob.texts(group) == ["alice via process 1"])
        try bob.must(["send", "Shared", "bob via process 2"])
        try bob.sync()
        try alice.sync()
        #expect(try alice.texts(group) == ["alice via process 1", "bob via process 2"])
        try converge([alice, bob])

        // Live: Bob follows through process 2 only.
        let follower = try bob.follow(group)
        defer { follower.stop() }
        #expect(follower.waitFor(timeout: 30) { $0.filter(\.isMessage).count == 2 } != nil, "history: \(follower.spawned.result())")
        // The first live message also shows the link is up (it may come by the link's first pass).
        try alice.must(["send", "Shared", "live 1 via process 1"])
        try alice.sync()
        #expect(follower.waitFor(timeout: 30) { $0.contains { $0.text == "live 1 via process 1" } } != nil, "\(follower.spawned.result())")
        // The link is subscribed now: the next one can only come as a push from process 2.
        try alice.must(["send", "Shared", "live 2 via process 1"])
        let sent = Date()
        try alice.sync()
        let shown = follower.waitFor(timeout: 30) { $0.contains { $0.text == "live 2 via process 1" } }
        let latency = since(sent)
        #expect(shown != nil, "\(follower.spawned.result())\nprocess 2: \(second.logs)")
        #expect(latency < 5, "shown \(latency) s after Alice's send and sync")
        print("RelayEndToEnd e: pushed across processes in \(latency) s")
        #expect(duplicateSeqs(follower.lines()).isEmpty)

        let stored = try postgres.query("SELECT count(*) FROM envelope")
        #expect((Int(stored) ?? 0) >= 6, "envelopes in PostgreSQL: \(stored)")
        #expect(first.stop().status == 0)
        #expect(second.stop().status == 0)
    }

    // f. Live chat through one relay: Alice's `log --follow` shows within seconds what Bob sent
    // with `send` and `sync`, and what he typed into `chat`; Bob's `chat` shows what Alice sent.
    // `relay list --json` shows the last sync; `relay info --json` shows the limits and the relay
    // ID of the address.
    @Test("Live chat, relay list and relay info", .timeLimit(.minutes(5)))
    func liveChatThroughOneRelay() throws {
        let scratch = try Scratch("relay-live")
        defer { scratch.remove() }
        let relay = try RelayProcess.start(data: scratch.path("relay"), options: RelayProcess.loopbackOptions + ["--idle-seconds", "120"])
        defer { relay.cleanUp() }

        let info = try CLI.run(["relay", "info", relay.address, "--json"]).object()
        #expect(info["relay"] as? String == relay.relayID)
        let limits = info["limits"] as? [String: Any] ?? [:]
        func limit(_ name: String) -> Double? { (limits[name] as? NSNumber)?.doubleValue }
        // As given on the command line, and the defaults otherwise.
        #expect(limit("connections_per_address") == 1000, "\(info)")
        #expect(limit("idle_seconds") == 120, "\(info)")
        #expect(limit("maximum_frame_bytes") == Double(2 << 20), "\(info)")
        for name in ["envelopes_per_second_per_identity", "connections_per_identity", "pending_outbound_bytes_per_connection",
                     "payload_retention_seconds", "groups_per_identity", "new_identities_per_minute", "handshake_seconds"] {
            #expect((limit(name) ?? 0) > 0, "\(name) in \(info)")
        }
        // An address whose relay ID is not this relay's is refused.
        var random = SystemRandomNumberGenerator()
        let other = RelayAddress.encode(IdentityKey.generate(using: &random).id)
        let wrong = try CLI.run(["relay", "info", "dcgka-relay://\(relay.authority)/\(other)", "--json"])
        #expect(wrong.isOneLineRefusal && wrong.stderr.contains(relay.relayID), "\(wrong)")

        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        try Home.introduce(alice, bob)
        try alice.use(relay)
        try bob.use(relay)
        let listed = try alice.must(["relay", "list", "--json"]).object()["relays"] as? [[String: Any]] ?? []
        #expect(listed.count == 1 && listed[0]["address"] as? String == relay.address && listed[0]["last_sync"] == nil, "\(listed)")
        let group = try alice.createGroup("Live", with: ["bob"])
        try alice.sync()
        try bob.sync()
        for home in [alice, bob] {
            let relays = try home.must(["relay", "list", "--json"]).object()["relays"] as? [[String: Any]] ?? []
            #expect(relays.count == 1 && relays[0]["last_sync"] is String && relays[0]["last_error"] == nil, "\(home): \(relays)")
        }

        let follower = try alice.follow(group)
        defer { follower.stop() }
        #expect(follower.waitFor(timeout: 30) { !$0.isEmpty } != nil, "\(follower.spawned.result())")
        try bob.must(["send", "Live", "bob: sent and synced"])
        let sent = Date()
        try bob.sync()
        let shown = follower.waitFor(timeout: 30) { $0.contains { $0.text == "bob: sent and synced" } }
        let latency = since(sent)
        #expect(shown != nil, "\(follower.spawned.result())")
        #expect(latency < 5, "shown \(latency) s after Bob's send and sync")

        // Bob types into `chat` (which keeps its own live link); Alice's follower shows it.
        let chat = try bob.spawn(["chat", "Live"], pipeInput: true)
        defer { chat.stop(grace: 5); chat.cleanUp() }
        #expect(chat.waitForOutput(timeout: 30) { $0.contains("bob: sent and synced") } != nil, "\(chat.result())")
        try chat.write("bob: typed in chat\n")
        let typed = Date()
        #expect(follower.waitFor(timeout: 30) { $0.contains { $0.text == "bob: typed in chat" } } != nil, "\(follower.spawned.result())")
        let chatLatency = since(typed)
        #expect(chatLatency < 5)
        // And Bob's chat shows what Alice sends.
        try alice.must(["send", "Live", "alice: seen it"])
        let replied = Date()
        try alice.sync()
        #expect(chat.waitForOutput(timeout: 30) { $0.contains("alice: seen it") } != nil, "\(chat.result())")
        let replyLatency = since(replied)
        #expect(replyLatency < 5)
        chat.closeInput()
        #expect(chat.wait(timeout: 30))
        print("RelayEndToEnd f: live latencies: send+sync → follower \(latency) s, chat → follower \(chatLatency) s, send+sync → chat \(replyLatency) s")

        let lines = follower.lines()
        #expect(lines.filter(\.isMessage).map(\.text) == ["bob: sent and synced", "bob: typed in chat", "alice: seen it"], "\(lines)")
        #expect(duplicateSeqs(lines).isEmpty)
        let relays = try alice.must(["relay", "list", "--json"]).object()["relays"] as? [[String: Any]] ?? []
        #expect(relays.first?["last_sync"] is String && relays.first?["last_error"] == nil, "\(relays)")
    }
}
