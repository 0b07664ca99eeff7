import Foundation
import Testing
import DCGKATestSupport
import DCGKACrypto

/// Alice, Bob and Carol (and Dave, whom Carol adds) on four homes, driven only through the
/// `dcgka` binary. Every envelope travels in `export`/`import` files, delivered to each home in a
/// seeded shuffled order, some late, some twice.
@Suite("Homes talking only through export/import files")
struct ThreeHomesTests {
    /// The four homes, the files in transit, and what was sent (with who should read it).
    final class World {
        struct Parcel {
            let path: String
            let exporter: String
            /// IDs the file is encrypted to: every member the exporter ever saw, and itself.
            let readers: Set<String>
        }

        struct Sent {
            let sender: String
            let senderID: String
            let text: String
            /// The sender's view when it sent, without itself: who must read it, and no one else.
            let readers: Set<String>
        }

        let scratch: Scratch
        let seed: UInt64
        var random: SeededRandom
        var homes: [String: Home] = [:]
        var names: [String] = []
        var group = ""
        var inbox: [String: [Parcel]] = [:]
        var everSeen: [String: Set<String>] = [:]
        var sent: [Sent] = []
        var files = 0
        var imports = 0
        var repeatedImports = 0
        var refusedAsNotForMe = 0
        var counter = 0

        init(seed: UInt64) throws {
            self.seed = seed
            random = SeededRandom(seed: seed)
            scratch = try Scratch("three-homes")
        }

        func home(_ name: String) -> Home { homes[name]! }

        func add(_ name: String) throws {
            homes[name] = try Home.create(name, in: scratch)
            names.append(name)
            inbox[name] = []
        }

        /// The group's members as `name` sees them now (nil before it joined).
        func view(_ name: String) throws -> [String]? {
            let members = try home(name).members(group)
            if let members { everSeen[name, default: []].formUnion(members) }
            return members
        }

        func isMember(_ name: String) throws -> Bool { try view(name)?.contains(home(name).id) ?? false }

        func send(_ name: String) throws {
            counter += 1
            let text = "\(name) says #\(counter) (seed \(seed))"
            guard let view = try view(name) else { throw CLI.Failure("\(name) cannot send: it does not know the group") }
            let home = home(name)
            try home.must(["send", group, text])
            sent.append(Sent(sender: name, senderID: home.id, text: text, readers: Set(view).subtracting([home.id])))
        }

        /// `name` writes a file of everything it holds, for every other home's inbox.
        func export(_ name: String) throws {
            guard try view(name) != nil else { return }
            files += 1
            let path = scratch.path("file-\(files)-\(name).dcgka")
            try home(name).export(to: path)
            let parcel = Parcel(path: path, exporter: name, readers: everSeen[name, default: []].union([home(name).id]))
            for other in names where other != name { inbox[other, default: []].append(parcel) }
        }

        /// `name` imports, in a shuffled order, each waiting file with this probability (the
        /// others wait for a later delivery).
        func deliver(_ name: String, probability: Double = 1) throws {
            var waiting = inbox[name, default: []]
            waiting.shuffle(using: &random)
            var left: [Parcel] = []
            for parcel in waiting {
                if random.chance(probability) { try take(parcel, at: name) } else { left.append(parcel) }
            }
            inbox[name] = left
        }

        func take(_ parcel: Parcel, at name: String) throws {
            let home = home(name)
            let result = try home.run(["import", parcel.path, "--json"])
            imports += 1
            guard parcel.readers.contains(home.id) else {
                // Encrypted to the exporter's participants only: refused, in one line.
                refusedAsNotForMe += 1
                #expect(result.isOneLineRefusal, "\(result)")
                #expect(result.stderr.contains("encrypted for other people"), "\(result)")
                return
            }
            let report = try ImportReport(result.object())
            #expect(report.rejected == 0, "\(name) importing \(parcel.exporter)'s file: \(report)")
            #expect(report.equivocations == 0, "\(name) importing \(parcel.exporter)'s file: \(report)")
            // A second import of the same file brings nothing new. Always tried for the file
            // that made a home join (the invitation rides in it with the group's earlier
            // envelopes), and for a seeded share of the others.
            if !report.joined.isEmpty || random.chance(0.3) {
                repeatedImports += 1
                let again = try home.importReport(parcel.path)
                #expect(
                    again.new == 0,
                    "\(name) imported \(parcel.exporter)'s file \(parcel.path) a second time and got new envelopes; first import: \(report); second: \(again)")
                #expect(again.rejected == 0 && again.equivocations == 0, "\(again)")
            }
        }

        /// Some messages from each of `senders` (in a shuffled order), some files, some deliveries.
        func chatter(_ senders: [String], rounds: Int, probability: Double) throws {
            for _ in 0..<rounds {
                for name in senders.shuffled(using: &random) where try isMember(name) {
                    for _ in 0..<Int.random(in: 1...2, using: &random) { try send(name) }
                }
                for name in names.shuffled(using: &random) where random.chance(0.7) { try export(name) }
                for name in names.shuffled(using: &random) { try deliver(name, probability: probability) }
            }
        }

        /// Everyone who knows the group writes a file and everyone imports every waiting file,
        /// twice over (the second pass carries the acknowledgments the first one made).
        func fullSync() throws {
            for _ in 0..<2 {
                for name in names.shuffled(using: &random) { try export(name) }
                for name in names.shuffled(using: &random) { try deliver(name) }
            }
        }
    }

    @Test("create, talk, add, update, remove, talk: every member reads exactly what its sender's view allowed",
          .timeLimit(.minutes(10)))
    func scenario() throws {
        let world = try World(seed: scenarioSeed(20_250_612))
        defer { world.scratch.remove() }
        let started = Date()
        let seed = world.seed

        for name in ["alice", "bob", "carol", "dave"] { try world.add(name) }
        for (i, a) in world.names.enumerated() {
            for b in world.names[(i + 1)...] { try Home.introduce(world.home(a), world.home(b)) }
        }

        // Alice creates the group with Bob and Carol; Dave cannot open her file.
        world.group = try world.home("alice").createGroup("Garden", with: ["bob", "carol"])
        try world.export("alice")
        for name in world.names { try world.deliver(name) }
        #expect(try world.isMember("bob"), "seed \(seed)")
        #expect(try world.isMember("carol"), "seed \(seed)")
        #expect(try world.view("dave") == nil, "seed \(seed)")

        // Messages from all three, delivered late and out of order.
        try world.chatter(["alice", "bob", "carol"], rounds: 3, probability: 0.6)
        try world.fullSync()

        // Carol adds Dave; the others keep talking before they hear of it.
        try world.home("carol").must(["group", "add", world.group, "dave"])
        try world.export("carol")
        try world.chatter(["alice", "bob", "carol", "dave"], rounds: 2, probability: 0.6)
        #expect(try world.isMember("dave") || world.inbox["dave", default: []].contains { $0.exporter == "carol" }, "seed \(seed)")

        // Bob refreshes his keys while messages fly.
        try world.home("bob").must(["group", "update", world.group])
        try world.export("bob")
        try world.chatter(["alice", "bob", "carol", "dave"], rounds: 2, probability: 0.6)
        try world.fullSync()
        let four = Set(["alice", "bob", "carol", "dave"].map { world.home($0).id })
        for name in world.names { #expect(try Set(world.view(name) ?? []) == four, "\(name), seed \(seed)") }

        // Alice removes Carol and says something right away; the others (Carol too) keep talking
        // until the removal reaches them.
        try world.home("alice").must(["group", "remove", world.group, "carol"])
        let removalIndex = world.sent.count
        try world.send("alice")
        try world.export("alice")
        try world.chatter(["bob", "carol", "dave", "alice"], rounds: 3, probability: 0.5)
        try world.fullSync()

        // Carol, now out, is refused; the others talk on.
        let carolBefore = try world.home("carol").log(world.group)
        let refused = try world.home("carol").run(["send", world.group, "carol after her removal"])
        #expect(refused.isOneLineRefusal && refused.stderr.contains("no longer a member"), "\(refused)")
        #expect(try world.home("carol").log(world.group) == carolBefore)
        try world.chatter(["alice", "bob", "dave"], rounds: 2, probability: 0.7)
        try world.fullSync()

        // Everyone who stayed sees the same members.
        let three = Set(["alice", "bob", "dave"].map { world.home($0).id })
        for name in ["alice", "bob", "dave"] {
            #expect(try Set(world.view(name) ?? []) == three, "\(name)'s members, seed \(seed)")
        }
        let carolGroup = try world.home("carol").groups()[world.group]
        #expect(carolGroup?["member"] as? Bool == false, "carol's group list: \(String(describing: carolGroup))")

        // Every message is in the log of exactly the members of its sender's view (and the
        // sender's), once; nothing else claims a seq twice.
        var logs: [String: [LogLine]] = [:]
        for name in world.names { logs[name] = try world.home(name).log(world.group) }
        for message in world.sent {
            for name in world.names {
                let home = world.home(name)
                let copies = logs[name, default: []].filter { $0.isMessage && $0.fromID == message.senderID && $0.text == message.text }
                let expected = name == message.sender || message.readers.contains(home.id)
                #expect(copies.count == (expected ? 1 : 0),
                        "\(name) has \(copies.count) copies of \"\(message.text)\" (sender's view: \(message.readers.count + 1) members), seed \(seed)")
                if name == message.sender { #expect(copies.allSatisfy { $0.mine }) }
            }
        }
        // Each sent message's seq, from its sender's own log.
        var bySeq: [String: World.Sent] = [:]
        for message in world.sent {
            if let line = logs[message.sender, default: []].first(where: { $0.isMessage && $0.mine && $0.text == message.text }), let seq = line.seq {
                bySeq["\(message.senderID)#\(seq)"] = message
            }
        }
        for name in world.names {
            #expect(duplicateSeqs(logs[name, default: []]).isEmpty, "\(name): \(duplicateSeqs(logs[name, default: []])), seed \(seed)")
            // Nothing went wrong quietly: the only unreadable lines are messages this home was not
            // meant to read (sent before it joined).
            for line in logs[name, default: []] where line.event != nil {
                #expect(!["non-member", "processing-failed", "lost-ratchet", "equivocation", "expired", "resync-requested"].contains(line.event!),
                        "\(name): \(line), seed \(seed)")
                if line.event == "unreadable", let from = line.fromID, let seq = line.seq, let message = bySeq["\(from)#\(seq)"] {
                    #expect(!message.readers.contains(world.home(name).id),
                            "\(name) could not read \"\(message.text)\", meant for it: \(line), seed \(seed)")
                }
            }
        }

        // Carol: told of her removal, and nothing sent by anyone who had processed it.
        let carolLog = logs["carol", default: []]
        #expect(carolLog.contains { $0.event == "removed-me" }, "seed \(seed)")
        let carolID = world.home("carol").id
        for message in world.sent[removalIndex...] where message.sender == "alice" {
            #expect(!carolLog.contains { $0.text == message.text }, "carol read \"\(message.text)\" after alice removed her")
        }
        for message in world.sent where !message.readers.contains(carolID) && message.sender != "carol" {
            #expect(!carolLog.contains { $0.text == message.text }, "carol read \"\(message.text)\"")
        }
        // Dave was in some senders' views, so the check above covered what he reads.
        #expect(world.sent.contains { $0.readers.contains(world.home("dave").id) }, "dave was meant to read something")

        #expect(world.refusedAsNotForMe > 0, "no file was ever refused as not for its reader")
        #expect(world.repeatedImports > 0)
        print("ThreeHomesTests: seed \(seed): \(world.sent.count) messages, \(world.files) files, \(world.imports) imports (\(world.repeatedImports) repeated, \(world.refusedAsNotForMe) not for the reader), \(Int(Date().timeIntervalSince(started))) s")
    }

    /// The smallest case of the repeated-import check above: the file that carries Dave's
    /// invitation also carries the group's earlier envelopes, in the exporter's log order.
    @Test("the file that carries an invitation is taken whole on its first import", .timeLimit(.minutes(10)))
    func invitationFileTakenWhole() throws {
        let scratch = try Scratch("invitation-file")
        defer { scratch.remove() }
        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        let carol = try Home.create("carol", in: scratch)
        let dave = try Home.create("dave", in: scratch)
        try Home.introduce(alice, bob)
        try Home.introduce(alice, carol)
        try Home.introduce(bob, carol)
        try Home.introduce(carol, dave)
        let group = try alice.createGroup("G", with: ["bob", "carol"])
        try alice.export(to: scratch.path("a1"))
        _ = try bob.importReport(scratch.path("a1"))
        _ = try carol.importReport(scratch.path("a1"))
        // Bob speaks before he hears that Carol added Dave, then welcomes Dave.
        try bob.must(["send", group, "bob, before dave"])
        try carol.must(["group", "add", group, "dave"])
        try carol.export(to: scratch.path("c1"))
        _ = try bob.importReport(scratch.path("c1"))
        try bob.must(["send", group, "hi dave, welcome"])
        try bob.export(to: scratch.path("b2"))

        let first = try dave.importReport(scratch.path("b2"))
        #expect(first.joined == [group], "\(first)")
        let afterFirst = try dave.log(group)
        #expect(afterFirst.contains { $0.isMessage && $0.text == "hi dave, welcome" },
                "one import of Bob's file did not show Bob's message to Dave: \(afterFirst.map(\.text)); report \(first)")
        let second = try dave.importReport(scratch.path("b2"))
        #expect(second.new == 0, "the same file imported again brought new envelopes: \(second) (first: \(first))")
        let afterSecond = try dave.log(group)
        #expect(afterSecond.contains { $0.isMessage && $0.text == "hi dave, welcome" })
        #expect(!afterSecond.contains { $0.isMessage && $0.text == "bob, before dave" })
    }
}
