import Foundation
import Testing
import DCGKATestSupport
import DCGKACrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Helpers shared by the messenger's end-to-end tests: they drive the built `dcgka` binary as a
// subprocess, each test in its own temporary folders, and read what it prints (mostly `--json`).

/// Finding and running the `dcgka` executable (after CLITests' helpers, with time limits, an
/// environment and standard input added).
enum CLI {
    static func binary() throws -> URL { try TestExecutables.dcgka() }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct Result: CustomStringConvertible {
        let arguments: [String]
        let status: Int32
        let stdout: String
        let stderr: String
        /// Killed by a signal (the status is then the signal's number).
        let signaled: Bool
        let seconds: Double

        var description: String {
            "`dcgka \(arguments.joined(separator: " "))` → \(signaled ? "signal" : "status") \(status)\nstdout: \(stdout)\nstderr: \(stderr)"
        }

        /// The `--json` output, parsed.
        func json() throws -> Any {
            guard status == 0, !signaled else { throw Failure("command failed: \(self)") }
            do {
                return try JSONSerialization.jsonObject(with: Data(stdout.utf8))
            } catch {
                throw Failure("not JSON (\(error)): \(self)")
            }
        }

        func object() throws -> [String: Any] {
            guard let object = try json() as? [String: Any] else { throw Failure("not a JSON object: \(self)") }
            return object
        }

        func array() throws -> [[String: Any]] {
            guard let array = try json() as? [[String: Any]] else { throw Failure("not a JSON array of objects: \(self)") }
            return array
        }

        /// A refusal as the CLI promises it: status 1, nothing on standard output, one line on
        /// standard error that starts with `dcgka: `.
        var isOneLineRefusal: Bool {
            let lines = stderr.split(separator: "\n", omittingEmptySubsequences: false)
            return !signaled && status == 1 && stdout.isEmpty && lines.count == 2 && lines[1].isEmpty
                && lines[0].hasPrefix("dcgka: ") && lines[0].count > "dcgka: ".count
        }
    }

    /// The environment a child gets: this process's, without anything that would point it at
    /// another home or hand it a passphrase, plus `extra`.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in ["DCGKA_HOME", "DCGKA_PASSPHRASE", "DCGKA_CLOCK_OFFSET"] { environment.removeValue(forKey: key) }
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// Runs `dcgka` to its end (killed, and an error thrown, past `timeout` seconds). Standard
    /// output and error go to files, so nothing can block on a full pipe; standard input is
    /// `input` (a file's contents) or empty.
    static func run(
        _ arguments: [String], environment extra: [String: String] = [:], input: Data? = nil, timeout: Double = 60
    ) throws -> Result {
        let spawned = try Spawned(arguments, environment: extra, input: input)
        defer { spawned.cleanUp() }
        guard spawned.wait(timeout: timeout) else {
            spawned.kill()
            _ = spawned.wait(timeout: 10)
            throw Failure("`dcgka \(arguments.joined(separator: " "))` did not finish within \(timeout) s")
        }
        return spawned.result()
    }
}

/// A running `dcgka` process that a test may kill.
final class Spawned: @unchecked Sendable {
    let arguments: [String]
    let process = Process()
    let started = Date()
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var finished = false
    private var ended: Date?
    private let outURL: URL
    private let errURL: URL
    private let inURL: URL?

    init(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil) throws {
        self.arguments = arguments
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-io-\(UUID().uuidString)")
        outURL = base.appendingPathExtension("out")
        errURL = base.appendingPathExtension("err")
        inURL = input == nil ? nil : base.appendingPathExtension("in")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        if let inURL, let input { _ = FileManager.default.createFile(atPath: inURL.path, contents: input) }
        process.executableURL = try CLI.binary()
        process.arguments = arguments
        process.environment = CLI.environment(environment)
        guard let out = FileHandle(forWritingAtPath: outURL.path), let err = FileHandle(forWritingAtPath: errURL.path) else {
            throw CLI.Failure("cannot open output files in \(base.path)")
        }
        process.standardOutput = out
        process.standardError = err
        if let inURL {
            guard let handle = FileHandle(forReadingAtPath: inURL.path) else { throw CLI.Failure("cannot open \(inURL.path)") }
            process.standardInput = handle
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        let semaphore = done
        process.terminationHandler = { [weak self] _ in
            self?.markEnded()
            semaphore.signal()
        }
        try process.run()
        // The child has its own copies of the descriptors.
        try? out.close()
        try? err.close()
    }

    private func markEnded() {
        lock.lock()
        ended = Date()
        lock.unlock()
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits for the end; false when it did not end within `timeout` seconds.
    func wait(timeout: Double) -> Bool {
        lock.lock()
        if finished {
            lock.unlock()
            return true
        }
        lock.unlock()
        guard done.wait(timeout: .now() + timeout) == .success else { return false }
        // terminationHandler may run before waitUntilExit's bookkeeping: make the status final.
        process.waitUntilExit()
        lock.lock()
        finished = true
        lock.unlock()
        return true
    }

    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !finished && ended == nil && process.isRunning
    }

    /// SIGKILL: the process gets no chance to clean up (Process.terminate would be SIGTERM).
    func kill() {
        killHard(process.processIdentifier)
    }

    func result() -> CLI.Result {
        let out = (try? Data(contentsOf: outURL)) ?? Data()
        let err = (try? Data(contentsOf: errURL)) ?? Data()
        lock.lock()
        let end = ended ?? Date()
        lock.unlock()
        return CLI.Result(
            arguments: arguments, status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self), signaled: process.terminationReason == .uncaughtSignal,
            seconds: end.timeIntervalSince(started))
    }

    func cleanUp() {
        for url in [outURL, errURL] + (inURL.map { [$0] } ?? []) { try? FileManager.default.removeItem(at: url) }
    }
}

/// A test's own folder under the system's temporary directory, removed by `remove()` (call it
/// in a `defer`).
struct Scratch {
    let url: URL

    init(_ label: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

extension SeededRandom {
    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }
}

/// The seed of a scenario: `MESSENGER_SEED` when set (to replay a failure), else `fallback`.
func scenarioSeed(_ fallback: UInt64) -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["MESSENGER_SEED"], let seed = UInt64(text) { return seed }
    return fallback
}

/// One line of `dcgka log --json`.
struct LogLine: Equatable, CustomStringConvertible {
    var fromID: String?
    var seq: Int?
    var text: String
    var event: String?
    var mine: Bool
    /// The whole object, re-encoded with sorted keys: two lines are the same line when this is.
    var canonical: String

    init(_ object: [String: Any]) throws {
        fromID = object["from_id"] as? String
        seq = (object["seq"] as? NSNumber)?.intValue
        text = object["text"] as? String ?? ""
        event = object["event"] as? String
        mine = object["mine"] as? Bool ?? false
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        canonical = String(decoding: data, as: UTF8.self)
    }

    var isMessage: Bool { event == nil }
    var description: String { canonical }
}

/// One home, driven only through the binary.
struct Home: CustomStringConvertible {
    let name: String
    var path: String
    var id = ""
    var code = ""

    var description: String { name }

    init(name: String, in scratch: Scratch) {
        self.name = name
        path = scratch.path("home-\(name)")
    }

    func run(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil, timeout: Double = 60) throws -> CLI.Result {
        guard let command = arguments.first else { throw CLI.Failure("no command") }
        // `--home` right after the command (and its subcommand for `contact` and `group`).
        let split = ["contact", "group"].contains(command) ? 2 : 1
        return try CLI.run(
            Array(arguments.prefix(split)) + ["--home", path] + Array(arguments.dropFirst(split)), environment: environment,
            input: input, timeout: timeout)
    }

    /// Runs a command that must succeed.
    @discardableResult
    func must(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil, timeout: Double = 60) throws -> CLI.Result {
        let result = try run(arguments, environment: environment, input: input, timeout: timeout)
        guard result.status == 0, !result.signaled else { throw CLI.Failure("\(name): \(result)") }
        return result
    }

    static func create(_ name: String, in scratch: Scratch) throws -> Home {
        var home = Home(name: name, in: scratch)
        let object = try home.must(["init", "--name", name, "--json"]).object()
        guard let id = object["id"] as? String, let code = object["contact"] as? String else {
            throw CLI.Failure("init printed \(object)")
        }
        home.id = id
        home.code = code
        return home
    }

    /// Each adds the other as a contact, under the other's own name.
    static func introduce(_ a: Home, _ b: Home) throws {
        try a.must(["contact", "add", b.code, "--name", b.name])
        try b.must(["contact", "add", a.code, "--name", a.name])
    }

    func createGroup(_ title: String, with names: [String]) throws -> String {
        let object = try must(["group", "create", title, "--with"] + names + ["--json"]).object()
        guard let group = object["group"] as? String else { throw CLI.Failure("group create printed \(object)") }
        return group
    }

    /// The member IDs of a group as this home sees them (nil when it does not know the group).
    func members(_ group: String) throws -> [String]? {
        let result = try run(["group", "members", group, "--json"])
        if result.status == 1, result.stderr.contains("no group is called") { return nil }
        return try result.array().compactMap { $0["id"] as? String }
    }

    /// `group list --json`, by group ID.
    func groups() throws -> [String: [String: Any]] {
        var groups: [String: [String: Any]] = [:]
        for object in try must(["group", "list", "--json"]).array() {
            if let id = object["group"] as? String { groups[id] = object }
        }
        return groups
    }

    /// The group's history (empty when this home does not know the group yet).
    func log(_ group: String) throws -> [LogLine] {
        let result = try run(["log", group, "--json"])
        if result.status == 1, result.stderr.contains("no group is called") { return [] }
        return try result.array().map(LogLine.init)
    }

    func export(to file: String, extra: [String] = [], environment: [String: String] = [:]) throws {
        try must(["export", "--output", file] + extra, environment: environment)
    }

    /// Imports a file that must be accepted; returns the report.
    func importReport(_ file: String, extra: [String] = [], environment: [String: String] = [:]) throws -> ImportReport {
        let result = try must(["import", file, "--json"] + extra, environment: environment)
        return try ImportReport(result.object())
    }
}

/// `dcgka import --json`.
struct ImportReport: CustomStringConvertible {
    var new: Int
    var duplicate: Int
    var rejected: Int
    var ignored: Int
    var equivocations: Int
    var messages: Int
    var events: Int
    var joined: [String]
    var invitations: [String]
    var reasons: [String]

    init(_ object: [String: Any]) throws {
        func int(_ key: String) throws -> Int {
            guard let value = object[key] as? NSNumber else { throw CLI.Failure("import report without \(key): \(object)") }
            return value.intValue
        }
        new = try int("new")
        duplicate = try int("duplicate")
        rejected = try int("rejected")
        ignored = try int("ignored")
        equivocations = try int("equivocations")
        messages = try int("messages")
        events = try int("events")
        joined = (object["joined"] as? [[String: Any]] ?? []).compactMap { $0["group"] as? String }
        invitations = (object["invitations"] as? [[String: Any]] ?? []).compactMap { $0["group"] as? String }
        reasons = object["reasons"] as? [String] ?? []
    }

    var description: String {
        "new \(new), duplicate \(duplicate), rejected \(rejected), ignored \(ignored), equivocations \(equivocations), messages \(messages), events \(events), joined \(joined.count), reasons \(reasons)"
    }
}

/// (sender, seq) pairs that occur more than once among a log's lines that carry a seq.
func duplicateSeqs(_ lines: [LogLine]) -> [String] {
    var seen: [String: Int] = [:]
    for line in lines {
        guard let from = line.fromID, let seq = line.seq else { continue }
        seen["\(from.prefix(12))#\(seq)", default: 0] += 1
    }
    return seen.filter { $0.value > 1 }.keys.sorted()
}

/// SIGKILL to one process of ours, by its ID.
func killHard(_ pid: Int32) {
    guard pid > 0 else { return }
    _ = kill(pid, SIGKILL)
}

func sleep(seconds: Double) {
    guard seconds > 0 else { return }
    usleep(useconds_t(seconds * 1_000_000))
}
