import Foundation
import Testing
import DCGKATestSupport
import DCGKACrypto

/// Damaged, foreign and mistyped input: each is refused with exit status 1 and one line on
/// standard error, and changes nothing.
@Suite("Bad input is refused and changes nothing")
struct BadInputTests {
    /// Alice, Bob and Carol share a group; Bob has everything up to "before"; Alice has since
    /// written "the new message", which every file below carries.
    struct Setup {
        let scratch: Scratch
        let alice: Home
        let bob: Home
        let carol: Home
        let group: String
        /// Alice's file for the group's participants (Bob can open it).
        let good: [UInt8]
        let plain: [UInt8]

        static let newText = "the new message"

        init(_ label: String) throws {
            scratch = try Scratch(label)
            alice = try Home.create("alice", in: scratch)
            bob = try Home.create("bob", in: scratch)
            carol = try Home.create("carol", in: scratch)
            try Home.introduce(alice, bob)
            try Home.introduce(alice, carol)
            try Home.introduce(bob, carol)
            group = try alice.createGroup("Plans", with: ["bob", "carol"])
            try alice.must(["send", group, "before"])
            try alice.export(to: scratch.path("a0"))
            #expect(try bob.importReport(scratch.path("a0")).joined == [group])
            try alice.must(["send", group, Self.newText])
            try alice.export(to: scratch.path("good"))
            try alice.export(to: scratch.path("plain"), extra: ["--plain"])
            good = try Self.bytes(scratch.path("good"))
            plain = try Self.bytes(scratch.path("plain"))
        }

        static func bytes(_ path: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: path) else { throw CLI.Failure("cannot read \(path)") }
            return Array(data)
        }

        func write(_ bytes: [UInt8], _ name: String) -> String {
            let path = scratch.path(name)
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            return path
        }

        /// What Bob's home shows: the group's log and members, his groups and contacts.
        func state(_ home: Home? = nil) throws -> String {
            let home = home ?? bob
            return try [["log", group, "--json"], ["group", "members", group, "--json"], ["group", "list", "--json"], ["contact", "list", "--json"]]
                .map { try home.must($0).stdout }.joined(separator: "\n")
        }

        /// Bob imports `path`: refused in one line (containing `mentioning` when given), with
        /// nothing changed.
        func refused(_ path: String, _ what: String, mentioning: String? = nil, extra: [String] = [], environment: [String: String] = [:]) throws {
            let before = try state()
            let result = try bob.run(["import", path, "--json"] + extra, environment: environment)
            #expect(result.isOneLineRefusal, "\(what): \(result)")
            if let mentioning { #expect(result.stderr.contains(mentioning), "\(what): \(result.stderr)") }
            #expect(try state() == before, "\(what) changed Bob's home")
        }

        /// The good file is then accepted, and brings the new message: the refusals above were
        /// refusals of new content.
        func acceptGood() throws {
            let report = try bob.importReport(scratch.path("good"))
            #expect(report.new > 0 && report.rejected == 0, "\(report)")
            #expect(try bob.log(group).contains { $0.isMessage && $0.text == Self.newText })
        }
    }

    @Test("truncated (or extended) files are refused", .timeLimit(.minutes(10)))
    func truncated() throws {
        let setup = try Setup("truncated")
        defer { setup.scratch.remove() }
        let good = setup.good
        let header = "DCGKA-FILE".utf8.count + 2
        for length in Set([0, 1, 5, header - 1, header, header + 1, header + 40, good.count / 2, good.count - 17, good.count - 16, good.count - 1]).sorted() {
            let path = setup.write(Array(good.prefix(length)), "cut-\(length)")
            try setup.refused(path, "the encrypted file cut to \(length) of \(good.count) bytes")
        }
        let plain = setup.plain
        for length in Set([header, header + 3, plain.count / 2, plain.count - 1]).sorted() {
            let path = setup.write(Array(plain.prefix(length)), "plain-cut-\(length)")
            try setup.refused(path, "the plain file cut to \(length) of \(plain.count) bytes")
        }
        // Extended instead of cut: bytes after the end.
        try setup.refused(setup.write(good + [0], "longer-1"), "the encrypted file with a zero byte appended")
        try setup.refused(setup.write(good + good, "twice"), "the encrypted file written twice over")
        try setup.refused(setup.write(plain + [0x7f, 1, 2], "plain-longer"), "the plain file with bytes appended")
        try setup.acceptGood()
    }

    @Test("bit-flipped encrypted files are refused", .timeLimit(.minutes(10)))
    func bitFlipped() throws {
        let setup = try Setup("bit-flipped")
        defer { setup.scratch.remove() }
        var random = SeededRandom(seed: scenarioSeed(404))
        let good = setup.good
        // Every byte of the fixed header, then seeded positions over the rest (recipients,
        // sealed keys, chunk lengths, ciphertext, tags).
        var positions = Array(0..<12)
        for _ in 0..<36 { positions.append(Int.random(in: 12..<good.count, using: &random)) }
        positions.append(good.count - 1)
        for position in positions {
            var bytes = good
            let bit = Int.random(in: 0..<8, using: &random)
            bytes[position] ^= UInt8(1 << bit)
            let path = setup.write(bytes, "flip-\(position)-\(bit)")
            try setup.refused(path, "the encrypted file with bit \(bit) of byte \(position) of \(good.count) flipped")
        }
        try setup.acceptGood()
    }

    /// A plain file is not authenticated as a whole (its envelopes are signed one by one): a
    /// damaged one may be refused or partly taken, but nothing forged may ever show.
    @Test("bit-flipped plain files never show anything that was not sent", .timeLimit(.minutes(10)))
    func bitFlippedPlain() throws {
        let setup = try Setup("bit-flipped-plain")
        defer { setup.scratch.remove() }
        var random = SeededRandom(seed: scenarioSeed(405))
        let plain = setup.plain
        let genuine = Set(try setup.alice.log(setup.group).filter(\.isMessage).map(\.text))
        for index in 0..<24 {
            var bytes = plain
            let position = Int.random(in: 12..<plain.count, using: &random)
            let bit = Int.random(in: 0..<8, using: &random)
            bytes[position] ^= UInt8(1 << bit)
            let path = setup.write(bytes, "plain-flip-\(index)")
            // On a copy of Bob's home each time.
            let copy = try setup.bob.copy(to: setup.scratch.path("bob-copy-\(index)"))
            defer { try? FileManager.default.removeItem(atPath: copy.path) }
            let before = try setup.state(copy)
            let result = try copy.run(["import", path, "--json"])
            let what = "the plain file with bit \(bit) of byte \(position) of \(plain.count) flipped"
            #expect(!result.signaled && (result.status == 0 || result.isOneLineRefusal), "\(what): \(result)")
            if result.status != 0 {
                #expect(try setup.state(copy) == before, "\(what) was refused but changed the home")
            } else {
                let report = try ImportReport(result.object())
                #expect(report.equivocations == 0, "\(what): \(report)")
                let shown = try copy.log(setup.group).filter(\.isMessage)
                for line in shown {
                    #expect(genuine.contains(line.text), "\(what): Bob's copy shows a message nobody sent: \(line)")
                }
                #expect(duplicateSeqs(try copy.log(setup.group)).isEmpty)
            }
        }
        try setup.acceptGood()
    }

    @Test("foreign files are refused: random bytes, and files for other people", .timeLimit(.minutes(10)))
    func foreign() throws {
        let setup = try Setup("foreign")
        defer { setup.scratch.remove() }
        var random = SeededRandom(seed: scenarioSeed(77))
        func noise(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }
        let magic = Array("DCGKA-FILE".utf8)
        let cases: [(String, [UInt8])] = [
            ("an empty file", []),
            ("one random byte", noise(1)),
            ("64 random bytes", noise(64)),
            ("4096 random bytes", noise(4096)),
            ("random bytes after a plain header", magic + [1, 0] + noise(300)),
            ("random bytes after a recipients header", magic + [1, 1] + noise(300)),
            ("random bytes after a passphrase header", magic + [1, 2] + noise(300)),
            ("a header of an unknown version", magic + [2, 0] + noise(100)),
            ("a header of an unknown protection", magic + [1, 9] + noise(100)),
        ]
        for (index, (what, bytes)) in cases.enumerated() {
            try setup.refused(setup.write(bytes, "foreign-\(index)"), what)
        }
        try setup.refused(setup.write(noise(512), "noise"), "random bytes", mentioning: "not a dcgka sync file")

        // Alice's file for Carol only, with the new message in it.
        let forCarol = setup.scratch.path("for-carol")
        try setup.alice.export(to: forCarol, extra: ["--for", "carol"])
        try setup.refused(forCarol, "a file encrypted to Carol only", mentioning: "encrypted for other people")
        #expect(try setup.carol.importReport(forCarol).messages > 0, "Carol cannot read the file meant for her")

        // A file of a group Bob is not in, from people he does not know.
        let erin = try Home.create("erin", in: setup.scratch)
        let fred = try Home.create("fred", in: setup.scratch)
        try Home.introduce(erin, fred)
        _ = try erin.createGroup("Elsewhere", with: ["fred"])
        try erin.must(["send", "Elsewhere", "not for bob"])
        let erinFile = setup.scratch.path("erin")
        try erin.export(to: erinFile)
        try setup.refused(erinFile, "Erin's file for Fred", mentioning: "encrypted for other people")

        try setup.refused(setup.scratch.path("no-such-file"), "a missing file", mentioning: "cannot read")
        try setup.refused(setup.scratch.url.path, "a folder")
        try setup.acceptGood()
    }

    @Test("a passphrase file opens only with its passphrase", .timeLimit(.minutes(10)))
    func passphrase() throws {
        let setup = try Setup("passphrase")
        defer { setup.scratch.remove() }
        let file = setup.scratch.path("sealed")
        try setup.alice.export(to: file, extra: ["--passphrase"], environment: ["DCGKA_PASSPHRASE": "correct horse battery staple"])
        try setup.refused(file, "the wrong passphrase", mentioning: "does not open", extra: ["--passphrase"],
                          environment: ["DCGKA_PASSPHRASE": "correct horse battery stapler"])
        try setup.refused(file, "no passphrase", mentioning: "passphrase")
        try setup.refused(file, "no passphrase at hand", extra: ["--passphrase"])
        // A damaged passphrase file with the right passphrase.
        var bytes = try Setup.bytes(file)
        bytes[bytes.count - 5] ^= 0x40
        try setup.refused(setup.write(bytes, "sealed-damaged"), "a damaged passphrase file", extra: ["--passphrase"],
                          environment: ["DCGKA_PASSPHRASE": "correct horse battery staple"])
        let report = try setup.bob.importReport(file, extra: ["--passphrase"], environment: ["DCGKA_PASSPHRASE": "correct horse battery staple"])
        #expect(report.new > 0 && report.rejected == 0, "\(report)")
        #expect(try setup.bob.log(setup.group).contains { $0.isMessage && $0.text == Setup.newText })
    }

    @Test("a contact code with one character changed is refused for its checksum", .timeLimit(.minutes(10)))
    func mistypedContactCode() throws {
        let scratch = try Scratch("contact-code")
        defer { scratch.remove() }
        let alice = try Home.create("alice", in: scratch)
        let zed = try Home.create("zed", in: scratch)
        var random = SeededRandom(seed: scenarioSeed(31))
        let code = Array(zed.code)
        let prefix = "dcgka1".count
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        #expect(code.count > prefix + 8 && String(code.prefix(prefix)) == "dcgka1", "\(zed.code)")
        // The first and last characters after the prefix, and seeded ones between.
        var positions = [prefix, code.count - 2, code.count - 1]
        for _ in 0..<20 { positions.append(Int.random(in: prefix..<code.count, using: &random)) }
        let contactsBefore = try alice.must(["contact", "list", "--json"]).stdout
        for position in positions {
            var changed = code
            let replacement = alphabet.filter { $0 != code[position] }.randomElement(using: &random)!
            changed[position] = replacement
            let result = try alice.run(["contact", "add", String(changed), "--name", "zed"])
            let what = "the code with character \(position) of \(code.count) changed from \(code[position]) to \(replacement)"
            #expect(result.isOneLineRefusal, "\(what): \(result)")
            #expect(result.stderr.contains("checksum"), "\(what): \(result.stderr)")
        }
        #expect(try alice.must(["contact", "list", "--json"]).stdout == contactsBefore)
        // The code as given is fine.
        try alice.must(["contact", "add", zed.code, "--name", "zed"])
        #expect(try alice.must(["contact", "list", "--json"]).array().contains { $0["id"] as? String == zed.id })
    }

    @Test("an unknown group name is refused with the candidates", .timeLimit(.minutes(10)))
    func unknownGroup() throws {
        let setup = try Setup("unknown-group")
        defer { setup.scratch.remove() }
        let second = try setup.bob.createGroup("Holidays", with: ["carol"])
        let before = try setup.state()
        for arguments in [["send", "Plan", "hello"], ["log", "Nope", "--json"], ["group", "members", "plans"], ["group", "add", "Garden", "carol"],
                          ["export", "--output", setup.scratch.path("x"), "--group", "Nothing"]] {
            let result = try setup.bob.run(arguments)
            #expect(result.isOneLineRefusal, "\(arguments): \(result)")
            #expect(result.stderr.contains("no group is called"), "\(arguments): \(result.stderr)")
            for candidate in ["Plans (\(setup.group.prefix(12)))", "Holidays (\(second.prefix(12)))"] {
                #expect(result.stderr.contains(candidate), "\(arguments) does not list \(candidate): \(result.stderr)")
            }
        }
        #expect(try setup.state() == before)
        #expect(!FileManager.default.fileExists(atPath: setup.scratch.path("x")))
    }

    @Test("init twice on one home is refused", .timeLimit(.minutes(10)))
    func initTwice() throws {
        let scratch = try Scratch("init-twice")
        defer { scratch.remove() }
        let alice = try Home.create("alice", in: scratch)
        let before = try alice.must(["whoami", "--json"]).stdout
        for name in ["alice", "mallory"] {
            let result = try alice.run(["init", "--name", name, "--json"])
            #expect(result.isOneLineRefusal, "\(result)")
            #expect(result.stderr.contains("already has an identity"), "\(result.stderr)")
        }
        #expect(try alice.must(["whoami", "--json"]).stdout == before)
    }

    @Test("init twice on a home locked with a passphrase is refused before any passphrase is asked for", .timeLimit(.minutes(10)))
    func initTwiceLocked() throws {
        let scratch = try Scratch("init-twice-locked")
        defer { scratch.remove() }
        var alice = Home(name: "alice", in: scratch)
        let secret = ["DCGKA_PASSPHRASE": "a long home passphrase"]
        let created = try alice.must(["init", "--name", "alice", "--passphrase", "--json"], environment: secret).object()
        alice.id = created["id"] as? String ?? ""
        let before = try alice.must(["whoami", "--json"], environment: secret).stdout
        #expect(before.contains(alice.id))
        // Without the passphrase (no terminal either), and with it.
        for environment in [[:], secret] {
            let result = try alice.run(["init", "--name", "mallory", "--json"], environment: environment)
            #expect(result.isOneLineRefusal, "\(result)")
            #expect(result.stderr.contains("already has an identity"), "init on a locked home, \(environment.isEmpty ? "no passphrase" : "its passphrase"): \(result.stderr)")
        }
        #expect(try alice.must(["whoami", "--json"], environment: secret).stdout == before)
    }
}
