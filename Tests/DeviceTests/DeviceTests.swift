import Testing
import Foundation
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import KeyAgreement
@_spi(Simulation) import DCGKAGroup
@testable import Device
import DeviceStorage
import NetworkSimulation
import Sync
import GRDB

func rawExecute(_ path: String, _ sql: String) throws {
    let queue = try DatabaseQueue(path: path)
    try queue.write { try $0.execute(sql: sql) }
}

extension DeviceNetwork.Options {
    /// Each device on a SQLite file in a temporary folder (``DeviceNetwork/cleanUp()`` removes it).
    static var onDisk: Self { Self(storage: .files(in: nil)) }
}

@Suite struct DeviceEngineTests {
    @Test("create, message, add (title re-sent), remove, update: every device converges, the removed one reads nothing after")
    func lifecycle() throws {
        var world = try DeviceNetwork(["alice", "bob", "carol", "dave"])
        let group = try world["alice"].createGroup(title: "Desk", with: [try world.id("bob"), try world.id("carol")])
        try world["alice"].send(text: "one", to: group)
        try world.settle(["alice", "bob", "carol"])
        try world["bob"].send(text: "two", to: group)
        try world["carol"].add(try world.id("dave"), to: group)
        try world.settle(["alice", "bob", "carol", "dave"])
        #expect(try world["dave"].groups().first?.title == "Desk", "the adder re-sends the title")
        try world["alice"].remove(try world.id("bob"), from: group)
        try world["carol"].update(group)
        try world.settle(["alice", "bob", "carol", "dave"])
        try world["alice"].send(text: "after bob", to: group)
        try world.settle(["alice", "bob", "carol", "dave"])
        let expected = [try world.id("alice"), try world.id("carol"), try world.id("dave")].sorted()
        for name in ["alice", "bob", "carol", "dave"] { #expect(try world.members(name, group) == expected, "\(name)") }
        for name in ["carol", "dave"] { #expect(try world.texts(name, group).contains("after bob"), "\(name)") }
        #expect(try !world.texts("bob", group).contains("after bob"))
        #expect(try world["bob"].history(of: group).contains { $0.event == "removed-me" })
        #expect(try !world.texts("dave", group).contains("one"), "Dave joined after it")
        // No history line twice.
        for name in ["alice", "bob", "carol", "dave"] {
            let lines = try world[name].history(of: group).filter { $0.kind == .message }.map { "\($0.sender!)#\($0.seq!)" }
            #expect(Set(lines).count == lines.count, "\(name)")
        }
    }

    @Test("files carried in random orders, some twice, converge", arguments: [UInt64(1), 2, 3, 4, 5])
    func randomCarrying(seed: UInt64) throws {
        var world = try DeviceNetwork(["a", "b", "c"], .init(randomness: .seeded(seed)))
        var rng = SeededRandom(seed: seed)
        let group = try world["a"].createGroup(title: "G", with: [try world.id("b"), try world.id("c")])
        var files: [(to: String, bytes: [UInt8])] = []
        var sent: [String] = []
        for step in 0..<12 {
            let name = ["a", "b", "c"][Int(rng.next() % 3)]
            if try world[name].groups().first(where: { $0.id == group })?.isMember == true {
                let text = "\(name)-\(step)"
                try world[name].send(text: text, to: group)
                sent.append(text)
            }
            let bytes = try world.file(from: name)
            for other in ["a", "b", "c"] where other != name { files.append((other, bytes)) }
            files.shuffle(using: &rng)
            for _ in 0..<Int(rng.next() % 4) {
                guard let next = files.popLast() else { break }
                try world.carry(next.bytes, to: next.to)
                if rng.next() % 4 == 0 { #expect(try world.carry(next.bytes, to: next.to).new == 0) }
            }
        }
        for file in files { try world.carry(file.bytes, to: file.to) }
        try world.settle(["a", "b", "c"])
        for name in ["a", "b", "c"] {
            #expect(try Set(world.texts(name, group)) == Set(sent), "\(name)")
            #expect(try world.members(name, group).count == 3)
        }
    }

    @Test("an invitation from someone who is not a contact waits for acceptance; what came meanwhile is read after")
    func invitationFromStranger() throws {
        var world = try DeviceNetwork(["alice", "bob"])
        // A third person Bob does not know.
        try world.addPerson("mallory", exchangingContacts: false)
        try world.introduce("bob", to: "mallory")
        var mallory = world["mallory"]
        let group = try mallory.createGroup(title: "Unknown", with: [try world.id("bob")])
        try mallory.send(text: "hello bob", to: group)
        let report = try world.carry(try mallory.exportFile(protection: .plain).bytes, to: "bob")
        #expect(report.invitations == [group])
        #expect(report.joined.isEmpty)
        #expect(try world["bob"].groups().first?.pendingInvitation == true)
        #expect(try world.texts("bob", group).isEmpty)
        try world["bob"].acceptInvitation(group)
        #expect(try world.texts("bob", group) == ["hello bob"])
        #expect(try world["bob"].groups().first?.title == "Unknown")
        // Alice is not invited: the same file is nothing for her to keep.
        let other = try world.carry(try mallory.exportFile(protection: .plain).bytes, to: "alice")
        #expect(other.ignored > 0 && other.new == 0)
        #expect(try world["alice"].groups().isEmpty)
    }

    @Test("a file encrypted to the participants opens for each of them and for nobody else")
    func encryptedFiles() throws {
        var world = try DeviceNetwork(["alice", "bob", "eve"])
        let group = try world["alice"].createGroup(title: "G", with: [try world.id("bob")])
        var alice = world["alice"]
        let bundles = try alice.participantBundles(of: [group])
        #expect(Set(bundles.map(\.identity)) == Set([try world.id("alice"), try world.id("bob")]))
        let bytes = try alice.exportFile(protection: .recipients(bundles)).bytes
        #expect(try world.carry(bytes, to: "bob").joined == [group])
        #expect(throws: SyncFileError.notForMe) { try world.carry(bytes, to: "eve") }
        var cut = bytes
        cut.removeLast(20)
        #expect(throws: (any Error).self) { try world.carry(cut, to: "bob") }
        var flipped = bytes
        flipped[flipped.count - 30] ^= 1
        #expect(throws: SyncFileError.tampered) { try SyncFile.read(flipped, opener: try world["bob"].fileOpener()) }
        let sealed = try alice.exportFile(protection: .passphrase("correct horse", .init(logN: 10, r: 8, p: 1))).bytes
        #expect(throws: SyncFileError.wrongKey) { try SyncFile.read(sealed, opener: .init(me: nil, prekeys: PrekeyStore(), passphrase: "wrong")) }
        #expect(try SyncFile.read(sealed, opener: .init(me: nil, prekeys: PrekeyStore(), passphrase: "correct horse")).groups.count == 1)
    }

    @Test("a file from a contact remembers what it showed, so the next export for that contact carries only the rest")
    func exportSincePeerVector() throws {
        var world = try DeviceNetwork(["alice", "bob"])
        let group = try world["alice"].createGroup(title: "G", with: [try world.id("bob")])
        for n in 0..<5 { try world["alice"].send(text: "m\(n)", to: group) }
        try world.settle(["alice", "bob"])
        let full = try world["alice"].exportParts().first!.envelopes.count
        try world["alice"].send(text: "new", to: group)
        let since = try world["alice"].exportParts(for: try world.id("bob")).first!.envelopes.count
        #expect(since == 1, "only the new message (of \(full + 1))")
        let bytes = try world["alice"].exportFile(for: [try world.id("bob")], protection: .plain).bytes
        #expect(try world.carry(bytes, to: "bob").messages == 1)
    }

    @Test("contact codes: a changed character fails the checksum, an expired bundle is refused in words")
    func contactCodes() throws {
        var world = try DeviceNetwork(["alice"])
        let code = try world["alice"].profile().contactCode
        var characters = Array(code)
        let index = characters.count - 10
        characters[index] = characters[index] == "a" ? "b" : "a"
        #expect(throws: ContactCodeError.badChecksum) { try ContactCode.decode(String(characters), now: world.clock.now) }
        #expect(throws: ContactCodeError.notAContactCode) { try ContactCode.decode("hello", now: world.clock.now) }
        #expect(throws: ContactCodeError.badCharacters) { try ContactCode.decode("dcgka1!!!", now: world.clock.now) }
        let bundle = try ContactCode.decode(code, now: world.clock.now)
        #expect(bundle.notAfter >= world.clock.now + ContactCode.minimumValidity)
        do {
            _ = try ContactCode.decode(code, now: bundle.notAfter + 1)
            Issue.record("an expired code was accepted")
        } catch {
            #expect("\(error)".contains("dcgka whoami"))
        }
    }

    @Test("the engine rotates my bundle before it gets too old, and my groups announce the new one")
    func bundleRotation() throws {
        var world = try DeviceNetwork(["alice", "bob"])
        let group = try world["alice"].createGroup(title: "G", with: [try world.id("bob")])
        try world.settle(["alice", "bob"])
        let first = try world["alice"].profile().bundle
        world.clock.advance(70 * 86_400)
        let second = try world["alice"].profile().bundle
        #expect(second.notAfter > first.notAfter)
        #expect(second.notAfter >= world.clock.now + ContactCode.minimumValidity)
        try world["alice"].send(text: "after rotation", to: group)
        try world.settle(["alice", "bob"])
        #expect(try world.texts("bob", group).contains("after rotation"))
        let bobState = try world["bob"].store.read { try $0.group(group) }!.state!
        #expect(try Group(wireBytes: bobState).bundles[try world.id("alice")] == second, "Bob took the announced bundle")
    }
}

/// NETWORK.md §10.3: what the protocol deletes is gone from the database file and its WAL.
@Suite struct SecretDeletionTests {
    static func fileBytes(_ store: SQLiteDeviceStore) -> [UInt8] {
        store.filePaths.flatMap { path in FileManager.default.contents(atPath: path).map { Array($0) } ?? [] }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count, let first = needle.first else { return false }
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == first, Array(haystack[index..<(index + needle.count)]) == needle { return true }
            index += 1
        }
        return false
    }

    @Test("secrets a received message and acknowledgments use up are not in the SQLite file or its WAL")
    func usedUpSecrets() throws {
        var world = try DeviceNetwork(["alice", "bob"], .onDisk)
        defer { world.cleanUp() }
        let group = try world["alice"].createGroup(title: "G", with: [try world.id("bob")])
        try world.settle(["alice", "bob"])
        for n in 0..<3 { try world["alice"].send(text: "secret \(n)", to: group) }
        try world["alice"].update(group)
        try world["alice"].send(text: "after update", to: group)
        let file = try world.file(from: "alice")

        // Bob's state before, replayed with tracing on to learn what the import will use up.
        let bob = world["bob"]
        let before = try bob.store.read { try $0.group(group) }!.state!
        let profile = try bob.store.read { try $0.profile() }!
        let prekeys = try PrekeyStore(wireBytes: profile.prekeys)
        var replay = try Group(wireBytes: before)
        replay.startTracing()
        var rng = SeededRandom(seed: 5)
        let contents = try SyncFile.read(file, opener: .init(me: nil, prekeys: PrekeyStore()))
        for part in contents.groups {
            for wire in part.envelopes { _ = replay.receive(try Envelope(wire: wire, groupID: part.group), prekeys: prekeys, using: &rng) }
        }
        let retired = replay.takeTraces().retired
        #expect(retired.count >= 4, "the replay must use up secrets, or this test proves nothing")

        let report = try world.carry(file, to: "bob")
        #expect(report.messages == 4)
        let store = bob.store as! SQLiteDeviceStore
        let bytes = Self.fileBytes(store)
        #expect(bytes.count > 4096)
        // Positive control: a secret Bob still holds is found by the same scan.
        #expect(Self.contains(bytes, Array(profile.identity.prefix(32))), "the scan must find a live secret")
        for secret in retired {
            #expect(!Self.contains(bytes, secret.bytes), "a used-up secret is still in the database file")
        }
    }

    @Test("expired prekeys are deleted past their grace period and leave the file")
    func expiredPrekeys() throws {
        var world = try DeviceNetwork(["alice"], .onDisk)
        defer { world.cleanUp() }
        let store = world["alice"].store as! SQLiteDeviceStore
        let profile = try store.read { try $0.profile() }!
        let old = try PrekeyStore(wireBytes: profile.prekeys).entries.values.map { $0.secret.secretBytes32.bytes }
        #expect(old.count == 1)
        #expect(Self.contains(Self.fileBytes(store), old[0]))
        // Past expiry (90 days) and the 60-day grace.
        world.clock.advance(151 * 86_400)
        _ = try world["alice"].profile()
        let now = try PrekeyStore(wireBytes: try store.read { try $0.profile() }!.prekeys)
        #expect(!now.entries.values.contains { $0.secret.secretBytes32.bytes == old[0] })
        #expect(!Self.contains(Self.fileBytes(store), old[0]), "a deleted prekey is still in the database file")
    }
}

/// The store's own errors.
@Suite struct StoreTests {
    @Test("a home written by a newer version is refused in words")
    func newerVersion() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("dcgka.sqlite").path
        _ = try SQLiteDeviceStore(path: path)
        // A later release's migration, recorded the way GRDB records them.
        try rawExecute(path, "INSERT INTO grdb_migrations (identifier) VALUES ('v99')")
        #expect(throws: DeviceStoreError.newerVersion) { try SQLiteDeviceStore(path: path) }
    }

    @Test("a file that is not a database is refused in words")
    func notADatabase() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-garbage-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x42, count: 8192))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try SQLiteDeviceStore(path: path)
            Issue.record("garbage opened as a database")
        } catch let error as DeviceStoreError {
            #expect("\(error)".contains("cannot be opened"))
        }
    }
}

/// NETWORK.md §10.3: a home locked with a passphrase, and disappearing messages.
@Suite struct AtRestTests {
    @Test("a locked home keeps names, titles, states and history only sealed; it opens with its passphrase only")
    func lockedHome() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-lock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("a.sqlite").path
        let clock = NetworkClock()
        let store = try SQLiteDeviceStore(path: path, lockWith: "correct horse")
        #expect(store.isLocked)
        var alice = Device(store: store, clock: { clock.now }, random: SeededRandom(seed: 1))
        _ = try alice.initialize(name: "Alice")
        var bob = Device(store: try SQLiteDeviceStore(path: nil), clock: { clock.now }, random: SeededRandom(seed: 2))
        _ = try bob.initialize(name: "Bob")
        _ = try alice.addContact(code: try bob.profile().contactCode, name: "Source Zebra")
        let group = try alice.createGroup(title: "Leak Investigation", with: [try bob.me().id])
        try alice.send(text: "meet at the quarry", to: group)
        let identity = try PrekeyStore(wireBytes: try store.read { try $0.profile() }!.prekeys).entries.values.first!.secret.secretBytes32.bytes
        let bytes = SecretDeletionTests.fileBytes(store)
        for secret in ["Source Zebra", "Leak Investigation", "meet at the quarry"] {
            #expect(!SecretDeletionTests.contains(bytes, Array(secret.utf8)), "\(secret) is in the file in clear")
        }
        #expect(!SecretDeletionTests.contains(bytes, identity), "a prekey secret is in the file in clear")
        #expect(throws: DeviceStoreError.passphraseRequired) { try SQLiteDeviceStore(path: path) }
        #expect(throws: DeviceStoreError.wrongPassphrase) { try SQLiteDeviceStore(path: path, passphrase: "wrong") }
        let reopened = Device(store: try SQLiteDeviceStore(path: path, passphrase: "correct horse"), clock: { clock.now }, random: SeededRandom(seed: 3))
        #expect(try reopened.history(of: group).contains { $0.text == "meet at the quarry" })
        #expect(try reopened.contacts().map(\.name) == ["Source Zebra"])
        #expect(try reopened.groups().first?.title == "Leak Investigation")
    }

    @Test("a group's disappearing-messages timer deletes its history on this device")
    func disappearingMessages() throws {
        var world = try DeviceNetwork(["alice", "bob"], .onDisk)
        defer { world.cleanUp() }
        let group = try world["alice"].createGroup(title: "G", with: [try world.id("bob")])
        try world["alice"].send(text: "gone soon", to: group)
        try world.settle(["alice", "bob"])
        try world["bob"].setDisappearingTimer(3600, for: group)
        #expect(try world.texts("bob", group) == ["gone soon"])
        world.clock.advance(3601)
        #expect(try world.texts("bob", group).isEmpty, "past the timer nothing is shown")
        try world["alice"].send(text: "new", to: group)
        try world.settle(["alice", "bob"])
        #expect(try world.texts("bob", group) == ["new"])
        let store = world["bob"].store as! SQLiteDeviceStore
        #expect(!SecretDeletionTests.contains(SecretDeletionTests.fileBytes(store), Array("gone soon".utf8)), "deleted text left in the file")
        #expect(try world.texts("alice", group).contains("gone soon"), "the timer is Bob's, on his device")
    }
}

/// Devices over the sync engine (NETWORK.md §11): the pass a relay and direct links run, here
/// over the network's memory links.
@Suite struct DeviceSyncTests {
    @Test("three devices in a chain A–B–C reach the same state over memory links; a second pass moves nothing new")
    func chain() async throws {
        var world = try DeviceNetwork(["a", "b", "c"])
        let group = try world["a"].createGroup(title: "Chain", with: [try world.id("b"), try world.id("c")])
        // Everyone learns of the group by a file first (a link needs the group on both sides).
        let first = try world.file(from: "a")
        try world.carry(first, to: "b")
        try world.carry(first, to: "c")
        try world["a"].send(text: "from a", to: group)
        try world["c"].send(text: "from c", to: group)
        try world["b"].update(group)
        func total() throws -> Int {
            try ["a", "b", "c"].reduce(0) { sum, name in sum + (try world[name].store.read { try $0.logCount(group: group) }) }
        }
        var quiet = false
        for _ in 0..<8 {
            let before = try total()
            try await world.pass("a", "b")
            try await world.pass("b", "c")
            if try total() == before { quiet = true; break }
        }
        #expect(quiet, "the chain keeps producing envelopes")
        for name in ["a", "b", "c"] {
            #expect(Set(try world.texts(name, group)) == ["from a", "from c"], "\(name)")
            #expect(try world.members(name, group).count == 3)
        }
        let holdings = try ["a", "b", "c"].map { try world[$0].holdings(of: group).chains }
        #expect(holdings[0] == holdings[1] && holdings[1] == holdings[2])
        let before = try world["a"].store.read { try $0.logCount(group: group) }
        try await world.pass("a", "b")
        #expect(try world["a"].store.read { try $0.logCount(group: group) } == before)
    }
}

/// NETWORK.md §10.4 and PROTOCOL.md §6.1: payloads past retention are pruned, chains continue.
@Suite struct RetentionTests {
    @Test("past 30 days payloads are pruned and files say so; the chain continues; a full copy from another holder restores them")
    func pruning() throws {
        var world = try DeviceNetwork(["alice", "bob", "carol"])
        let group = try world["alice"].createGroup(title: "G", with: [try world.id("bob"), try world.id("carol")])
        for n in 1...3 { try world["alice"].send(text: "old \(n)", to: group) }
        let early = try world.file(from: "alice")
        try world.carry(early, to: "carol")  // Carol keeps full copies; Bob is away.
        world.clock.advance(31 * 86_400)
        try world["alice"].send(text: "new", to: group)  // this write prunes the old payloads
        let parts = try world["alice"].exportParts()
        let pruned = try #require(parts.first).pruned
        #expect(pruned == [SeqRange(sender: try world.id("alice"), from: 2, through: 5)], "title and three messages: \(pruned)")
        let late = try world.file(from: "alice")
        let report = try world.carry(late, to: "bob")
        #expect(report.joined == [group])
        #expect(try world.texts("bob", group) == ["new"], "later messages still decrypt")
        #expect(try world["bob"].history(of: group).filter { $0.event == "expired" }.count == 4)
        let held = try world["bob"].store.read { try $0.logEntry(group: group, sender: try world.id("alice"), seq: 3) }
        #expect(held?.isPruned == true)
        let carolHeld = try world["carol"].store.read { try $0.logEntry(group: group, sender: try world.id("alice"), seq: 3) }
        #expect(carolHeld?.isPruned == false)
        // Carol has not written since; her file still carries the payloads.
        let full = try world["carol"].exportFile(protection: .plain).bytes
        let restored = try world.carry(full, to: "bob")
        #expect(restored.new >= 4, "\(restored)")
        #expect(Set(try world.texts("bob", group)) == ["old 1", "old 2", "old 3", "new"])
        #expect(try world["bob"].groups().first?.title == "G")
    }
}

/// PROTOCOL.md §6.2 at the device: a fork is kept as evidence and passed on by files, and the
/// equivocation rule removes its sender (PROTOCOL-NOTES.md, "Equivocation").
@Suite struct EvidenceTests {
    /// Alice, Bob and Carol in a group; Alice's device is cloned (a restored backup) and both
    /// copies send at one seq. Returns the network, the group, the two sides, and each side as
    /// a file from Alice.
    static func forked(_ options: DeviceNetwork.Options = .init()) throws -> (world: DeviceNetwork, group: GroupID, one: Envelope, two: Envelope, files: [[UInt8]]) {
        var world = try DeviceNetwork(["alice", "bob", "carol"], options)
        let group = try world["alice"].createGroup(title: "G", with: [try world.id("bob"), try world.id("carol")])
        try world.settle(["alice", "bob", "carol"])
        let state = try world["alice"].store.read { try $0.group(group) }!.state!
        var first = try Group(wireBytes: state)
        var second = first
        let one = try first.send(MessageContent(.text("fork one"), sentAt: world.clock.now).bytes, now: world.clock.now)
        let two = try second.send(MessageContent(.text("fork two"), sentAt: world.clock.now).bytes, now: world.clock.now)
        var rng = SeededRandom(seed: 3)
        let files = try [one, two].map { envelope in
            try SyncFile.write(
                exporter: try world.id("alice"), groups: [.init(group: group, vector: Frontier(), envelopes: [envelope.wireBytes])],
                protection: .plain, using: &rng)
        }
        return (world, group, one, two, files)
    }

    /// ``forked()``, with both sides carried to the member the rule names, or to the other one.
    static func forkShown(toNamed: Bool, _ options: DeviceNetwork.Options = .init()) throws -> (DeviceNetwork, GroupID) {
        var (world, group, _, _, files) = try forked(options)
        let (named, other) = try Self.named(world)
        for file in files { try world.carry(file, to: toNamed ? named : other) }
        return (world, group)
    }

    /// The member the rule names (the smallest ID in its view, the equivocator left out).
    static func named(_ world: DeviceNetwork) throws -> (named: String, other: String) {
        try world.id("bob") < world.id("carol") ? ("bob", "carol") : ("carol", "bob")
    }

    @Test("the member the equivocation rule names removes the equivocator at once, and the remove carries the cut to the others")
    func namedMemberRemovesAtOnce() throws {
        var (world, group) = try Self.forkShown(toNamed: true)
        let (named, other) = try Self.named(world)
        let alice = try world.id("alice")
        #expect(try world.view(named, group) == Set([try world.id("bob"), try world.id("carol")]), "removed in the batch that found the fork")
        #expect(try world[named].history(of: group).contains { $0.event == "removed-equivocator" && $0.subjects == [alice] })
        #expect(try world[named].performEquivocationDuty() == 0, "nothing left to do")
        #expect(try world[named].store.read { try $0.groupsWithOpenEvidence() }.isEmpty, "settled: sync passes no longer decode the group")
        #expect(try world[named].store.read { try $0.evidenceCount(group: group) } == 1, "still kept, to be passed on")
        // The remove (with the evidence in it) reaches the other member in a file.
        try world.carry(try world.file(from: named), to: other)
        #expect(try world.view(other, group) == Set([try world.id("bob"), try world.id("carol")]))
        #expect(try !world[other].history(of: group).contains { $0.event == "removed-equivocator" }, "one remove suffices")
        // Both go on; Alice, removed, reads nothing sent now.
        try world[other].send(text: "after the fork", to: group)
        try world.carry(try world.file(from: other), to: named)
        try world.carry(try world.file(from: other), to: "alice")
        #expect(try world.texts(named, group).contains("after the fork"))
        #expect(try !world.texts("alice", group).contains("after the fork"))
    }

    @Test("a member the rule does not name removes the equivocator only once the delay has passed")
    func otherMemberWaitsForTheDelay() throws {
        var (world, group) = try Self.forkShown(toNamed: false)
        let (_, other) = try Self.named(world)
        let alice = try world.id("alice")
        #expect(try world.view(other, group)?.contains(alice) == true, "the named member is to do it")
        #expect(try world[other].performEquivocationDuty() == 0)
        world.clock.advance(Device<SeededRandom>.equivocatorRemovalDelay - 10)
        #expect(try world[other].performEquivocationDuty() == 0, "not yet")
        #expect(try world[other].store.read { try $0.groupsWithOpenEvidence() } == [group], "open while the duty waits")
        world.clock.advance(20)
        #expect(try world[other].performEquivocationDuty() == 1)
        #expect(try world.view(other, group) == Set([try world.id("bob"), try world.id("carol")]))
        #expect(try world[other].store.read { try $0.groupsWithOpenEvidence() }.isEmpty, "settled once the equivocator is out")
        #expect(try world[other].performEquivocationDuty() == 0)
    }

    @Test("the settled mark follows the duty: a batch of the group opens it again while the equivocator is still in my view")
    func settledMarkFollowsTheDuty() throws {
        var (world, group) = try Self.forkShown(toNamed: false, .onDisk)
        defer { world.cleanUp() }
        let (named, other) = try Self.named(world)
        let alice = try world.id("alice")
        // Rows from before the mark existed start open; a wrong mark is corrected by the next batch.
        try rawExecute(try #require(try world.databasePath(of: other)), "UPDATE evidence SET settled = 1")
        #expect(try world[other].store.read { try $0.groupsWithOpenEvidence() }.isEmpty)
        try world[named].send(text: "still here", to: group)
        try world.carry(try world.file(from: named), to: other)
        #expect(try world[other].store.read { try $0.groupsWithOpenEvidence() } == [group], "the batch's duty opened it again")
        #expect(try world.view(other, group)?.contains(alice) == true)
        world.clock.advance(Device<SeededRandom>.equivocatorRemovalDelay + 10)
        #expect(try world[other].performEquivocationDuty() == 1, "the sync pass still sees the owed duty")
        #expect(try world[other].store.read { try $0.groupsWithOpenEvidence() }.isEmpty)
    }

    @Test("evidence the table lacks (it came with the group's state) is kept when the duty first sees it, and its delay starts then")
    func evidenceTheTableLacks() throws {
        var (world, group) = try Self.forkShown(toNamed: false, .onDisk)
        defer { world.cleanUp() }
        let (named, other) = try Self.named(world)
        let delay = Device<SeededRandom>.equivocatorRemovalDelay
        // The group state holds the fork; the table no longer does.
        try rawExecute(try #require(try world.databasePath(of: other)), "DELETE FROM evidence")
        #expect(try world[other].store.read { try $0.evidenceCount(group: group) } == 0)
        world.clock.advance(delay + 10)
        #expect(try world[other].performEquivocationDuty() == 0, "a sync pass only looks at groups with evidence in the table")
        // Something arrives in the group: the receive path's duty finds the evidence and keeps it, dated now.
        try world[named].send(text: "still here", to: group)
        try world.carry(try world.file(from: named), to: other)
        #expect(try world[other].store.read { try $0.evidenceCount(group: group) } == 1)
        #expect(try world[other].store.read { try $0.evidenceSavedAt(group: group, sender: try world.id("alice")) } == world.clock.now)
        #expect(try world.view(other, group)?.contains(try world.id("alice")) == true, "the delay starts now, not at the fork")
        world.clock.advance(delay - 10)
        #expect(try world[other].performEquivocationDuty() == 0, "not yet")
        world.clock.advance(20)
        #expect(try world[other].performEquivocationDuty() == 1)
        #expect(try world.view(other, group) == Set([try world.id("bob"), try world.id("carol")]))
    }

    /// PROTOCOL-NOTES.md, "Equivocation", the returning participant, at the device: Pat, removed,
    /// was shown Eve's message; the others were shown Eve's add of Xavier at the same seq. Carol
    /// adds Pat back; Carol's file holds the add of Xavier, which Pat's log contradicts. Pat's
    /// device keeps the fork, the add of Pat that waited is then processed, and Pat's welcome-ack
    /// carries the evidence.
    @Test("a removed member of one side added back by the other side: its device keeps the fork from the adder's file, and its welcome-ack carries the evidence")
    func returningParticipant() throws {
        var world = try DeviceNetwork(["alice", "bob", "carol", "pat", "eve", "xavier"])
        let everyone = ["alice", "bob", "carol", "pat", "eve"]
        let group = try world["alice"].createGroup(title: "G", with: try ["bob", "carol", "pat", "eve"].map { try world.id($0) })
        try world.settle(everyone)
        let pat = try world.id("pat"), eve = try world.id("eve")
        try world["alice"].remove(pat, from: group)
        try world.settle(everyone)
        #expect(try world.view("pat", group)?.contains(pat) != true, "Pat is out")
        // Eve's device, restored from a backup, sends a message; the device itself adds Xavier at that seq.
        let state = try #require(try world["eve"].store.read { try $0.group(group) }?.state)
        var copy = try Group(wireBytes: state)
        let message = try copy.send(MessageContent(.text("for pat only"), sentAt: world.clock.now).bytes, now: world.clock.now)
        var rng = SeededRandom(seed: 5)
        let messageFile = try SyncFile.write(
            exporter: eve, groups: [.init(group: group, vector: Frontier(), envelopes: [message.wireBytes])], protection: .plain, using: &rng)
        try world["eve"].add(try world.id("xavier"), to: group)
        let addFile = try world.file(from: "eve")
        try world.carry(messageFile, to: "pat")
        for name in ["alice", "bob", "carol"] { try world.carry(addFile, to: name) }
        try world.settle(["alice", "bob", "carol"])
        #expect(try world["bob"].store.read { try $0.evidenceCount(group: group) } == 0, "nobody on that side knows of the fork")
        try world["carol"].add(pat, to: group)
        let report = try world.carry(try world.file(from: "carol"), to: "pat")
        #expect(report.equivocations == 1)
        #expect(try world.view("pat", group)?.contains(pat) == true, "the add of Pat was processed once the fork was kept")
        #expect(try world["pat"].store.read { try $0.evidenceCount(group: group) } == 1)
        let patGroup = try Group(wireBytes: try #require(try world["pat"].store.read { try $0.group(group) }?.state))
        #expect(patGroup.forkEvidence[eve] != nil)
        var welcomeAck: Envelope?
        for seq in 1..<patGroup.broadcast.nextOwnPosition().seq {
            guard let entry = try world["pat"].store.read({ try $0.logEntry(group: group, sender: pat, seq: seq) }),
                  let envelope = try? Envelope(wire: entry.wire, groupID: group), envelope.kind == .welcomeAck else { continue }
            welcomeAck = envelope
        }
        let ack = try #require(welcomeAck)
        let body = try ControlBody(kind: .welcomeAck, payload: try #require(ack.payload))
        #expect(body.forkEvidence == patGroup.forkEvidence[eve]?.wireBytes, "the welcome-ack carries the evidence")
        // Everyone then learns of the fork, Eve is removed, and the add of Xavier counts nowhere.
        try world.settle(["alice", "bob", "carol", "pat"])
        world.clock.advance(Device<SeededRandom>.equivocatorRemovalDelay + 10)
        for name in ["alice", "bob", "carol", "pat"] { try world[name].performEquivocationDuty() }
        try world.settle(["alice", "bob", "carol", "pat"])
        let expected = Set(try ["alice", "bob", "carol", "pat"].map { try world.id($0) })
        for name in ["alice", "bob", "carol", "pat"] {
            #expect(try world.view(name, group) == expected, "\(name)")
        }
    }

    @Test("two validly signed envelopes at one seq: the second is evidence, not history, and the evidence travels on")
    func forkEvidencePassedOn() throws {
        var (world, group, one, two, files) = try Self.forked()
        #expect(one.seq == two.seq && one.hash != two.hash)
        try world.carry(files[0], to: "bob")
        let report = try world.carry(files[1], to: "bob")
        #expect(report.equivocations == 1 && report.new == 0)
        #expect(try world.texts("bob", group).contains("fork one"))
        #expect(try !world.texts("bob", group).contains("fork two"))
        #expect(try world["bob"].store.read { try $0.evidenceCount(group: group) } == 1)
        #expect(try world["bob"].history(of: group).contains { $0.event == "equivocation" })
        // Carol has seen neither; Bob's file carries the envelope and the evidence.
        let passed = try world.carry(try world.file(from: "bob"), to: "carol")
        #expect(passed.equivocations == 1)
        #expect(try world["carol"].store.read { try $0.evidenceCount(group: group) } == 1)
        #expect(try world["carol"].history(of: group).contains { $0.event == "equivocation" })
    }
}
