import Foundation
import Testing
import DCGKATestSupport

/// Several `dcgka` processes on ONE home at the same time: the store's write transactions must
/// serialize them, so every message is kept once, at its own seq, and no seq is signed twice.
@Suite("Concurrent processes on one home")
struct ConcurrentSendTests {
    /// What the worker threads report back.
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [CLI.Result] = []
        private var errors: [String] = []
        private var spans: [(start: Date, end: Date)] = []

        func add(_ result: CLI.Result, start: Date, end: Date) {
            lock.lock()
            results.append(result)
            spans.append((start, end))
            lock.unlock()
        }

        func add(error: any Error) {
            lock.lock()
            errors.append("\(error)")
            lock.unlock()
        }

        var all: (results: [CLI.Result], errors: [String], spans: [(start: Date, end: Date)]) {
            lock.lock()
            defer { lock.unlock() }
            return (results, errors, spans)
        }

        /// Pairs of runs whose lifetimes overlapped (proof that the processes really ran side by side).
        var overlaps: Int {
            let spans = all.spans
            var count = 0
            for i in spans.indices {
                for j in spans.indices where j > i && spans[i].start < spans[j].end && spans[j].start < spans[i].end { count += 1 }
            }
            return count
        }
    }

    /// Runs `workers` bodies on their own threads; false when they did not all end in time.
    static func parallel(_ workers: Int, timeout: Double, _ body: @escaping @Sendable (Int) -> Void) -> Bool {
        let group = DispatchGroup()
        for worker in 0..<workers {
            group.enter()
            let thread = Thread {
                body(worker)
                group.leave()
            }
            thread.start()
        }
        return group.wait(timeout: .now() + timeout) == .success
    }

    /// Alice's home with a group she shares with Bob, who has joined.
    static func pair(_ scratch: Scratch, title: String) throws -> (alice: Home, bob: Home, group: String) {
        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        try Home.introduce(alice, bob)
        let group = try alice.createGroup(title, with: ["bob"])
        try alice.export(to: scratch.path("a0"))
        #expect(try bob.importReport(scratch.path("a0")).joined == [group])
        return (alice, bob, group)
    }

    /// Every text in `texts` is a line of mine in `home`'s log exactly once, at distinct seqs; and
    /// a peer that imports the home's file reads each once, with no equivocation.
    static func checkSent(_ texts: [String], from home: Home, peer: Home, group: String, scratch: Scratch) throws {
        let log = try home.log(group)
        let mine = log.filter { $0.isMessage && $0.mine }
        for text in texts {
            #expect(mine.filter { $0.text == text }.count == 1, "\"\(text)\" is not in \(home.name)'s log exactly once")
        }
        let seqs = mine.compactMap(\.seq)
        #expect(seqs.count == mine.count && Set(seqs).count == seqs.count, "\(home.name)'s messages share seqs: \(seqs.sorted())")
        #expect(duplicateSeqs(log).isEmpty, "\(duplicateSeqs(log))")

        let file = scratch.path("\(home.name)-after.dcgka")
        try home.export(to: file)
        let report = try peer.importReport(file)
        #expect(report.equivocations == 0, "\(report)")
        #expect(report.rejected == 0, "\(report)")
        let peerLog = try peer.log(group)
        for text in texts {
            #expect(peerLog.filter { $0.isMessage && $0.fromID == home.id && $0.text == text }.count == 1,
                    "\(peer.name) does not read \"\(text)\" exactly once")
        }
        #expect(duplicateSeqs(peerLog).isEmpty, "\(duplicateSeqs(peerLog))")
        // Same seqs on both sides.
        let peerSeqs = Dictionary(peerLog.filter { $0.isMessage && $0.fromID == home.id }.map { ($0.text, $0.seq) }, uniquingKeysWith: { a, _ in a })
        for line in mine { #expect(peerSeqs[line.text] == line.seq, "\"\(line.text)\": seq \(String(describing: line.seq)) here, \(String(describing: peerSeqs[line.text])) at \(peer.name)") }
    }

    @Test("two `dcgka send` loops on one home: each message once, at its own seq", .timeLimit(.minutes(10)))
    func twoSendLoops() throws {
        let scratch = try Scratch("concurrent-send")
        defer { scratch.remove() }
        let (alice, bob, group) = try Self.pair(scratch, title: "Busy")
        let perWorker = 40
        let results = Results()
        let path = alice.path
        let finished = Self.parallel(2, timeout: 180) { worker in
            for i in 0..<perWorker {
                let start = Date()
                do {
                    let result = try CLI.run(["send", "--home", path, group, "worker \(worker) message \(i)"])
                    results.add(result, start: start, end: Date())
                } catch {
                    results.add(error: error)
                }
            }
        }
        #expect(finished, "the senders did not finish in time")
        let (runs, errors, _) = results.all
        #expect(errors.isEmpty, "\(errors)")
        #expect(runs.count == 2 * perWorker)
        for run in runs where run.status != 0 || run.signaled { Issue.record("a send failed: \(run)") }
        #expect(results.overlaps > 0, "the two loops never ran at the same time")
        let texts = (0..<2).flatMap { worker in (0..<perWorker).map { "worker \(worker) message \($0)" } }
        try Self.checkSent(texts, from: alice, peer: bob, group: group, scratch: scratch)
    }

    @Test("two `dcgka chat` processes on one home, each sending many lines", .timeLimit(.minutes(10)))
    func twoChats() throws {
        let scratch = try Scratch("concurrent-chat")
        defer { scratch.remove() }
        let (alice, bob, group) = try Self.pair(scratch, title: "Chatty")
        let perWorker = 120
        let results = Results()
        let path = alice.path
        let finished = Self.parallel(2, timeout: 180) { worker in
            let lines = (0..<perWorker).map { "chat \(worker) line \($0)" }.joined(separator: "\n") + "\n"
            let start = Date()
            do {
                let result = try CLI.run(["chat", "--home", path, group], input: Data(lines.utf8), timeout: 170)
                results.add(result, start: start, end: Date())
            } catch {
                results.add(error: error)
            }
        }
        #expect(finished)
        let (runs, errors, _) = results.all
        #expect(errors.isEmpty, "\(errors)")
        for run in runs {
            #expect(run.status == 0 && !run.signaled, "\(run.arguments) → \(run.status); stderr: \(run.stderr)")
            // A line refused by `chat` is reported on standard error, not by the exit status.
            #expect(run.stderr.isEmpty, "chat reported errors: \(run.stderr)")
        }
        #expect(results.overlaps > 0)
        let texts = (0..<2).flatMap { worker in (0..<perWorker).map { "chat \(worker) line \($0)" } }
        try Self.checkSent(texts, from: alice, peer: bob, group: group, scratch: scratch)
    }

    @Test("a send loop and an import loop on one home at the same time", .timeLimit(.minutes(10)))
    func sendWhileImporting() throws {
        let scratch = try Scratch("send-while-importing")
        defer { scratch.remove() }
        let (alice, bob, group) = try Self.pair(scratch, title: "Both")
        let history = (0..<200).map { "from alice \($0)" }
        try alice.must(["chat", group], input: Data((history.joined(separator: "\n") + "\n").utf8), timeout: 120)
        let file = scratch.path("alice-history.dcgka")
        try alice.export(to: file)
        let results = Results()
        let bobPath = bob.path
        let perWorker = 30
        let finished = Self.parallel(2, timeout: 180) { worker in
            for i in 0..<(worker == 0 ? perWorker : 4) {
                let start = Date()
                do {
                    let arguments = worker == 0
                        ? ["send", "--home", bobPath, group, "bob while importing \(i)"]
                        : ["import", "--home", bobPath, file, "--json"]
                    results.add(try CLI.run(arguments), start: start, end: Date())
                } catch {
                    results.add(error: error)
                }
            }
        }
        #expect(finished)
        let (runs, errors, _) = results.all
        #expect(errors.isEmpty, "\(errors)")
        for run in runs where run.status != 0 || run.signaled { Issue.record("failed: \(run)") }
        #expect(results.overlaps > 0)
        let bobLog = try bob.log(group)
        for text in history {
            #expect(bobLog.filter { $0.isMessage && $0.text == text }.count == 1, "bob does not show \"\(text)\" exactly once")
        }
        let texts = (0..<perWorker).map { "bob while importing \($0)" }
        try Self.checkSent(texts, from: bob, peer: alice, group: group, scratch: scratch)
    }
}
