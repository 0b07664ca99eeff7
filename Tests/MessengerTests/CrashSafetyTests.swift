import Foundation
import Testing
import DCGKATestSupport
import DCGKACrypto

/// SIGKILL at seeded random points: a home importing a long file (Bob, and copies of his home)
/// and a home sending in a loop (Carol) are killed again and again, restarted, and finish. Nothing committed may be lost,
/// nothing may be shown twice, no seq may be signed twice with different bytes, and the homes
/// must converge afterwards.
@Suite("Crash safety under SIGKILL")
struct CrashSafetyTests {
    /// Kills of the importer (Bob, then copies of Bob's home as it was before the import) and,
    /// as many again, of the sender (Carol).
    static let killsPerHome = 30
    static let historyMessages = 600

    /// What a log line says, without the times it was received or shown at.
    static func content(_ line: LogLine) -> String {
        "\(line.fromID ?? "-")|\(line.seq.map(String.init) ?? "-")|\(line.event ?? "message")|\(line.event == nil ? line.text : "")"
    }

    /// Checks that `after` keeps every line of `before`, in order, and shows no (sender, seq) twice.
    static func checkKept(_ before: [LogLine], _ after: [LogLine], _ who: String, _ context: String) {
        let kept = after.count >= before.count && zip(before, after).allSatisfy { $0.canonical == $1.canonical }
        #expect(kept, "\(who)'s log lost or changed committed lines (\(before.count) before, \(after.count) after) \(context)")
        #expect(duplicateSeqs(after).isEmpty, "\(who): the same (sender, seq) twice: \(duplicateSeqs(after)) \(context)")
    }

    @Test("kill the importer and the sender at random points; nothing committed is lost, nothing doubled, no seq signed twice",
          .timeLimit(.minutes(10)))
    func killAndRestart() throws {
        let seed = scenarioSeed(7_341)
        var random = SeededRandom(seed: seed)
        let scratch = try Scratch("crash")
        defer { scratch.remove() }
        let started = Date()
        let deadline = started.addingTimeInterval(6 * 60)

        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        let carol = try Home.create("carol", in: scratch)
        // Olga is a member who only ever imports: she checks what the killed homes exported.
        let olga = try Home.create("olga", in: scratch)
        let everyone = [alice, bob, carol, olga]
        for (i, a) in everyone.enumerated() { for b in everyone[(i + 1)...] { try Home.introduce(a, b) } }
        let group = try alice.createGroup("Crash", with: ["bob", "carol", "olga"])
        try alice.export(to: scratch.path("a0"))
        #expect(try carol.importReport(scratch.path("a0")).joined == [group])
        #expect(try olga.importReport(scratch.path("a0")).joined == [group])

        // A long history from Alice (one `chat` process, one transaction per line).
        let history = (1...Self.historyMessages).map { "history \($0) (seed \(seed))" }
        try alice.must(["chat", group], input: Data((history.joined(separator: "\n") + "\n").utf8), timeout: 240)
        let long = scratch.path("alice-long.dcgka")
        try alice.export(to: long)

        // Bob's home before the import, kept to make fresh copies from; an uninterrupted import
        // on one copy is the reference (and tells how long an import takes).
        let pristine = try bob.copy(to: scratch.path("home-bob-pristine"))
        let reference = try bob.copy(to: scratch.path("home-bob-reference"))
        let trialStart = Date()
        let trialReport = try reference.importReport(long)
        let importSeconds = Date().timeIntervalSince(trialStart)
        #expect(trialReport.messages == Self.historyMessages, "\(trialReport)")
        let referenceLines = try reference.log(group).map(Self.content)

        var bobLog: [LogLine] = []
        var carolLog = try carol.log(group)
        var bobKills = 0, cloneKills = 0, carolKills = 0, bobRuns = 0, cloneRuns = 0, carolRuns = 0
        var partial: [Int] = []
        var bobDone = false
        var exports: [String] = []
        var carolTexts: [String] = []
        var nextText = 1
        let sendSeconds = 0.8

        func carolMine() -> [String] { carolLog.filter { $0.isMessage && $0.mine }.map(\.text) }

        /// Runs `spawned` until its end or `delay`, then SIGKILL; true when it was killed (it may
        /// have ended on its own just before).
        func killAfter(_ spawned: Spawned, _ delay: Double) throws -> (killed: Bool, result: CLI.Result) {
            defer { spawned.cleanUp() }
            if !spawned.wait(timeout: delay) {
                spawned.kill()
                guard spawned.wait(timeout: 30) else { throw CLI.Failure("\(spawned.arguments) survived SIGKILL") }
            }
            let result = spawned.result()
            if result.signaled { #expect(result.status == 9, "killed by another signal: \(result)") }
            return (result.signaled, result)
        }

        func plainExport(_ home: Home) throws {
            guard try home.members(group) != nil else { return }
            let path = scratch.path("plain-\(exports.count)-\(home.name).dcgka")
            try home.export(to: path, extra: ["--plain"])
            exports.append(path)
        }

        while !bobDone || bobKills + cloneKills < Self.killsPerHome || carolKills < Self.killsPerHome {
            guard Date() < deadline else {
                Issue.record("out of time after \(bobKills) + \(cloneKills) + \(carolKills) kills")
                break
            }
            let importerDue = !bobDone || bobKills + cloneKills < Self.killsPerHome
            let pickImporter = importerDue && (carolKills >= Self.killsPerHome || random.chance(0.5))
            if pickImporter, !bobDone {
                // Bob imports the long file, killed anywhere in it (never letting the first runs
                // through), until a run gets through.
                let delay = importSeconds * Double.random(in: 0...(bobRuns < 8 ? 0.9 : 1.1), using: &random)
                let (killed, result) = try killAfter(try Spawned(["import", "--home", bob.path, long, "--json"]), delay)
                bobRuns += 1
                if killed {
                    bobKills += 1
                } else {
                    #expect(result.status == 0, "\(result)")
                    bobDone = true
                }
                let after = try bob.log(group)
                if killed, !after.isEmpty, after.count < referenceLines.count { partial.append(after.count) }
                Self.checkKept(bobLog, after, "bob", "(run \(bobRuns), seed \(seed))")
                bobLog = after
                try plainExport(bob)
            } else if pickImporter {
                // Then fresh copies of Bob's home before the import, killed late in the import,
                // where its batches commit; each restarted to the end. (They export nothing.)
                cloneRuns += 1
                let clone = try pristine.copy(to: scratch.path("home-bob-clone-\(cloneRuns)"))
                defer { try? FileManager.default.removeItem(atPath: clone.path) }
                let delay = importSeconds * Double.random(in: 0.6...1.0, using: &random)
                let (killed, result) = try killAfter(try Spawned(["import", "--home", clone.path, long, "--json"]), delay)
                if killed { cloneKills += 1 } else { #expect(result.status == 0, "\(result)") }
                let cut = try clone.log(group)
                let cutLines = cut.map(Self.content)
                #expect(Array(referenceLines.prefix(cutLines.count)) == cutLines,
                        "a copy of bob killed after \(delay) s shows \(cut.count) lines that do not start the uninterrupted import's \(referenceLines.count) (seed \(seed))")
                if killed, !cut.isEmpty, cut.count < referenceLines.count { partial.append(cut.count) }
                let finish = try clone.importReport(long)
                #expect(finish.rejected == 0 && finish.equivocations == 0, "\(finish)")
                let whole = try clone.log(group)
                Self.checkKept(cut, whole, "a copy of bob", "(copy \(cloneRuns), seed \(seed))")
                #expect(whole.map(Self.content) == referenceLines, "a copy of bob killed and restarted does not end as the uninterrupted import (seed \(seed))")
            } else {
                // Carol sends in a loop: a `chat` fed many lines, or now and then one `send`.
                let unsent = carolTexts.filter { !carolMine().contains($0) }
                let spawned: Spawned
                let delay: Double
                if random.chance(0.75) {
                    var batch = unsent
                    for _ in 0..<30 {
                        let text = "carol \(nextText) (seed \(seed))"
                        nextText += 1
                        carolTexts.append(text)
                        batch.append(text)
                    }
                    spawned = try Spawned(["chat", "--home", carol.path, group], input: Data((batch.joined(separator: "\n") + "\n").utf8))
                    delay = Double.random(in: 0.02...sendSeconds, using: &random)
                } else {
                    let text = unsent.first ?? {
                        let text = "carol \(nextText) (seed \(seed))"
                        nextText += 1
                        carolTexts.append(text)
                        return text
                    }()
                    spawned = try Spawned(["send", "--home", carol.path, group, text])
                    delay = Double.random(in: 0...0.15, using: &random)
                }
                let (killed, result) = try killAfter(spawned, delay)
                carolRuns += 1
                if killed { carolKills += 1 } else { #expect(result.status == 0 && result.stderr.isEmpty, "\(result)") }
                let after = try carol.log(group)
                Self.checkKept(carolLog, after, "carol", "(run \(carolRuns), seed \(seed))")
                carolLog = after
                let mine = carolMine()
                #expect(Set(mine).count == mine.count, "carol's log shows one of her messages twice (seed \(seed))")
                try plainExport(carol)
            }
        }

        // Restarted and left alone, both finish.
        let bobFinal = try bob.importReport(long)
        #expect(bobFinal.rejected == 0 && bobFinal.equivocations == 0 && bobFinal.new == 0, "\(bobFinal)")
        #expect(bobLog.map(Self.content) == referenceLines, "bob, killed and restarted, does not end as the uninterrupted import (seed \(seed))")
        let unsent = carolTexts.filter { !carolMine().contains($0) }
        if !unsent.isEmpty {
            try carol.must(["chat", group], input: Data((unsent.joined(separator: "\n") + "\n").utf8), timeout: 120)
        }
        let carolAfter = try carol.log(group)
        Self.checkKept(carolLog, carolAfter, "carol", "(final run, seed \(seed))")
        carolLog = carolAfter
        for text in carolTexts {
            #expect(carolLog.filter { $0.isMessage && $0.mine && $0.text == text }.count == 1, "carol's \"\(text)\" is not in her log exactly once")
        }
        let bobAfter = try bob.log(group)
        Self.checkKept(bobLog, bobAfter, "bob", "(final run, seed \(seed))")
        try plainExport(bob)
        try plainExport(carol)

        // No seq was signed twice: Olga takes every file the killed homes ever wrote, in order.
        for file in exports {
            let report = try olga.importReport(file)
            #expect(report.equivocations == 0, "\(file): \(report) (seed \(seed))")
            #expect(report.rejected == 0, "\(file): \(report) (seed \(seed))")
        }

        // Everyone converges: same members, same messages.
        for round in 0..<2 {
            var files: [(String, String)] = []
            for home in everyone {
                let path = scratch.path("final-\(round)-\(home.name).dcgka")
                try home.export(to: path)
                files.append((home.name, path))
            }
            for home in everyone {
                for (exporter, path) in files.shuffled(using: &random) where exporter != home.name {
                    let report = try home.importReport(path)
                    #expect(report.equivocations == 0 && report.rejected == 0, "\(home.name) importing \(exporter)'s file: \(report)")
                }
            }
        }
        let ids = Set(everyone.map(\.id))
        var messageSets: [String: Set<String>] = [:]
        for home in everyone {
            #expect(try Set(home.members(group) ?? []) == ids, "\(home.name)'s members (seed \(seed))")
            let log = try home.log(group)
            #expect(duplicateSeqs(log).isEmpty, "\(home.name): \(duplicateSeqs(log))")
            messageSets[home.name] = Set(log.filter(\.isMessage).map { "\($0.fromID ?? "?")#\($0.seq ?? -1)#\($0.text)" })
        }
        let expectedTexts = Set(history + carolTexts)
        for home in everyone {
            let set = messageSets[home.name] ?? []
            #expect(set == messageSets["alice"], "\(home.name) and alice differ in \(set.symmetricDifference(messageSets["alice"] ?? []).count) messages")
            let texts = Set(set.map { String($0.split(separator: "#", maxSplits: 2).last ?? "") })
            #expect(texts == expectedTexts, "\(home.name) misses \(expectedTexts.subtracting(texts).count) messages, has \(texts.subtracting(expectedTexts).count) unexpected")
        }

        #expect(bobKills + cloneKills + carolKills >= 50)
        print("CrashSafetyTests: seed \(seed): \(bobKills) kills of the importer in \(bobRuns) runs and \(cloneKills) of copies of it in \(cloneRuns) (\(partial.count) left a partial import: \(partial) lines of \(referenceLines.count)), \(carolKills) kills of the sender in \(carolRuns) runs, \(carolTexts.count) messages from the sender, \(exports.count) files checked, \(Int(Date().timeIntervalSince(started))) s")
    }

    /// The check above works: a copy of a home (a restored backup) that signs at a seq its
    /// original already used is caught by the observer as an equivocation.
    @Test("a restored copy that signs a used seq again is caught as an equivocation", .timeLimit(.minutes(10)))
    func equivocationIsCaught() throws {
        let scratch = try Scratch("equivocation")
        defer { scratch.remove() }
        let alice = try Home.create("alice", in: scratch)
        let olga = try Home.create("olga", in: scratch)
        try Home.introduce(alice, olga)
        let group = try alice.createGroup("Fork", with: ["olga"])
        try alice.export(to: scratch.path("a0"))
        #expect(try olga.importReport(scratch.path("a0")).joined == [group])
        let backup = try alice.copy(to: scratch.path("home-alice-backup"))
        try alice.must(["send", group, "from the original"])
        try backup.must(["send", group, "from the restored copy"])
        try alice.export(to: scratch.path("original"), extra: ["--plain"])
        try backup.export(to: scratch.path("copy"), extra: ["--plain"])
        let first = try olga.importReport(scratch.path("original"))
        #expect(first.equivocations == 0 && first.messages == 1, "\(first)")
        let second = try olga.importReport(scratch.path("copy"))
        #expect(second.equivocations == 1, "\(second)")
        let log = try olga.log(group)
        #expect(log.contains { $0.event == "equivocation" }, "\(log)")
        #expect(!log.contains { $0.text == "from the restored copy" })
    }
}

extension Home {
    /// A copy of this home's folder, as another home (only while no process uses it).
    func copy(to path: String) throws -> Home {
        var copy = self
        try FileManager.default.copyItem(atPath: self.path, toPath: path)
        copy.path = path
        return copy
    }
}
