import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Helpers for end-to-end tests that drive the built `dcgka` binary (and other programs) as real
// subprocesses, each test in its own temporary folders: running a command to its end with a time
// limit, keeping one running (a relay, `log --follow`, `chat`) and stopping it by SIGTERM or
// SIGKILL, and homes driven only through the CLI. Shared by MessengerTests and RelayTests.

/// Finding and running the `dcgka` executable, with time limits, an environment and standard input.
public enum CLI {
    public static func binary() throws -> URL { try TestExecutables.dcgka() }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public struct Result: CustomStringConvertible, Sendable {
        /// The program's name (`dcgka` unless another program ran).
        public let program: String
        public let arguments: [String]
        public let status: Int32
        public let stdout: String
        public let stderr: String
        /// Killed by a signal (the status is then the signal's number).
        public let signaled: Bool
        public let seconds: Double

        public init(
            program: String = "dcgka", arguments: [String], status: Int32, stdout: String, stderr: String, signaled: Bool, seconds: Double
        ) {
            self.program = program
            self.arguments = arguments
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
            self.signaled = signaled
            self.seconds = seconds
        }

        public var description: String {
            "`\(([program] + arguments).joined(separator: " "))` → \(signaled ? "signal" : "status") \(status)\nstdout: \(stdout)\nstderr: \(stderr)"
        }

        public var succeeded: Bool { status == 0 && !signaled }

        /// The `--json` output, parsed.
        public func json() throws -> Any {
            guard succeeded else { throw Failure("command failed: \(self)") }
            do {
                return try JSONSerialization.jsonObject(with: Data(stdout.utf8))
            } catch {
                throw Failure("not JSON (\(error)): \(self)")
            }
        }

        public func object() throws -> [String: Any] {
            guard let object = try json() as? [String: Any] else { throw Failure("not a JSON object: \(self)") }
            return object
        }

        public func array() throws -> [[String: Any]] {
            guard let array = try json() as? [[String: Any]] else { throw Failure("not a JSON array of objects: \(self)") }
            return array
        }

        /// A refusal as the CLI promises it: status 1, nothing on standard output, one line on
        /// standard error that starts with `dcgka: `.
        public var isOneLineRefusal: Bool {
            let lines = stderr.split(separator: "\n", omittingEmptySubsequences: false)
            return !signaled && status == 1 && stdout.isEmpty && lines.count == 2 && lines[1].isEmpty
                && lines[0].hasPrefix("dcgka: ") && lines[0].count > "dcgka: ".count
        }
    }

    /// The environment a child gets: this process's, without anything that would point it at
    /// another home or hand it a passphrase, plus `extra`.
    public static func environment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in ["DCGKA_HOME", "DCGKA_PASSPHRASE", "DCGKA_CLOCK_OFFSET"] { environment.removeValue(forKey: key) }
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// Runs `dcgka` (or `executable`) to its end (killed, and an error thrown, past `timeout`
    /// seconds). Standard output and error go to files, so nothing can block on a full pipe;
    /// standard input is `input` (a file's contents) or empty.
    public static func run(
        _ arguments: [String], executable: URL? = nil, environment extra: [String: String] = [:], input: Data? = nil,
        timeout: Double = 60
    ) throws -> Result {
        let spawned = try Spawned(arguments, executable: executable, environment: extra, input: input)
        defer { spawned.cleanUp() }
        guard spawned.wait(timeout: timeout) else {
            spawned.kill()
            _ = spawned.wait(timeout: 10)
            throw Failure("`\(spawned.commandLine)` did not finish within \(timeout) s; stderr: \(spawned.result().stderr)")
        }
        return spawned.result()
    }
}

/// A running process (`dcgka` unless told otherwise) that a test may signal, read while it runs,
/// and write to (with `pipeInput`). Its standard output and error go to temporary files.
public final class Spawned: @unchecked Sendable {
    public let arguments: [String]
    public let executable: URL
    public let process = Process()
    public let started = Date()
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var finished = false
    private var ended: Date?
    public let outURL: URL
    public let errURL: URL
    private let inURL: URL?
    private let inputPipe: Pipe?

    /// - Parameters:
    ///   - input: standard input's whole contents (a file), or nothing.
    ///   - pipeInput: standard input is a pipe the test writes to (``write(_:)``, ``closeInput()``).
    public init(
        _ arguments: [String], executable: URL? = nil, environment: [String: String] = [:], input: Data? = nil,
        pipeInput: Bool = false
    ) throws {
        self.arguments = arguments
        self.executable = try executable ?? CLI.binary()
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-io-\(UUID().uuidString)")
        outURL = base.appendingPathExtension("out")
        errURL = base.appendingPathExtension("err")
        inURL = input == nil ? nil : base.appendingPathExtension("in")
        inputPipe = pipeInput ? Pipe() : nil
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        if let inURL, let input { _ = FileManager.default.createFile(atPath: inURL.path, contents: input) }
        process.executableURL = self.executable
        process.arguments = arguments
        process.environment = CLI.environment(environment)
        guard let out = FileHandle(forWritingAtPath: outURL.path), let err = FileHandle(forWritingAtPath: errURL.path) else {
            throw CLI.Failure("cannot open output files in \(base.path)")
        }
        process.standardOutput = out
        process.standardError = err
        if let inputPipe {
            process.standardInput = inputPipe
        } else if let inURL {
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
        if let inputPipe { try? inputPipe.fileHandleForReading.close() }
    }

    private func markEnded() {
        lock.lock()
        ended = Date()
        lock.unlock()
    }

    public var pid: Int32 { process.processIdentifier }

    /// The program's name and arguments, for messages.
    public var commandLine: String { ([executable.lastPathComponent] + arguments).joined(separator: " ") }

    /// Waits for the end; false when it did not end within `timeout` seconds.
    public func wait(timeout: Double) -> Bool {
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

    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !finished && ended == nil && process.isRunning
    }

    /// SIGKILL: the process gets no chance to clean up (Process.terminate would be SIGTERM).
    public func kill() {
        guard isRunning else { return }
        killHard(process.processIdentifier)
    }

    /// SIGTERM: asks the process to stop (a relay drains and exits).
    public func terminate() {
        guard isRunning else { return }
        signalProcess(process.processIdentifier, SIGTERM)
    }

    /// SIGTERM, then SIGKILL when it has not ended within `grace` seconds; waits for the end.
    /// True when it ended by itself after SIGTERM.
    @discardableResult
    public func stop(grace: Double = 20) -> Bool {
        guard isRunning else {
            _ = wait(timeout: 10)
            return true
        }
        terminate()
        if wait(timeout: grace) { return true }
        kill()
        _ = wait(timeout: 10)
        return false
    }

    /// Writes to standard input (only with `pipeInput`).
    public func write(_ text: String) throws {
        guard let inputPipe else { throw CLI.Failure("\(commandLine) was not started with pipeInput") }
        try inputPipe.fileHandleForWriting.write(contentsOf: Data(text.utf8))
    }

    /// Closes standard input (end of file for the child).
    public func closeInput() {
        try? inputPipe?.fileHandleForWriting.close()
    }

    /// What the process wrote to standard output so far.
    public var stdout: String { String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self) }
    /// What the process wrote to standard error so far.
    public var stderr: String { String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self) }

    /// Polls standard output every 20 ms until `condition` holds (returns the output), the
    /// process ends (`nil`, after one last look) or `timeout` seconds pass (`nil`).
    public func waitForOutput(timeout: Double, until condition: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let running = isRunning
            let output = stdout
            if condition(output) { return output }
            if !running || Date() >= deadline { return nil }
            usleep(20_000)
        }
    }

    public func result() -> CLI.Result {
        let out = (try? Data(contentsOf: outURL)) ?? Data()
        let err = (try? Data(contentsOf: errURL)) ?? Data()
        lock.lock()
        let end = ended ?? Date()
        let isFinished = finished || ended != nil
        lock.unlock()
        return CLI.Result(
            program: executable.lastPathComponent, arguments: arguments, status: isFinished ? process.terminationStatus : -1, stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self), signaled: isFinished && process.terminationReason == .uncaughtSignal,
            seconds: end.timeIntervalSince(started))
    }

    /// Removes the output files (after the process ended).
    public func cleanUp() {
        closeInput()
        for url in [outURL, errURL] + (inURL.map { [$0] } ?? []) { try? FileManager.default.removeItem(at: url) }
    }
}

/// A test's own folder under the system's temporary directory, removed by `remove()` (call it
/// in a `defer`).
public struct Scratch: Sendable {
    public let url: URL

    public init(_ label: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}

/// One line of `dcgka log --json` (or of `dcgka log --follow --json`, one object per line).
public struct LogLine: Equatable, CustomStringConvertible, Sendable {
    public var fromID: String?
    public var seq: Int?
    public var text: String
    public var event: String?
    public var mine: Bool
    /// The whole object, re-encoded with sorted keys: two lines are the same line when this is.
    public var canonical: String

    public init(_ object: [String: Any]) throws {
        fromID = object["from_id"] as? String
        seq = (object["seq"] as? NSNumber)?.intValue
        text = object["text"] as? String ?? ""
        event = object["event"] as? String
        mine = object["mine"] as? Bool ?? false
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        canonical = String(decoding: data, as: UTF8.self)
    }

    public var isMessage: Bool { event == nil }
    public var description: String { canonical }
}

/// One home, driven only through the binary.
public struct Home: CustomStringConvertible, Sendable {
    public let name: String
    public var path: String
    public var id = ""
    public var code = ""
    /// The network namespace its commands run in (``NetworkLab``), nil for this process's own.
    public var namespace: String?

    public var description: String { name }

    public init(name: String, in scratch: Scratch) {
        self.name = name
        path = scratch.path("home-\(name)")
    }

    /// The home's arguments: `--home` right after the command (and its subcommand for
    /// `contact`, `group`, `relay`, `config` and `peer`).
    public func arguments(_ arguments: [String]) throws -> [String] {
        guard let command = arguments.first else { throw CLI.Failure("no command") }
        let split = ["contact", "group", "relay", "config", "peer"].contains(command) ? 2 : 1
        return Array(arguments.prefix(split)) + ["--home", path] + Array(arguments.dropFirst(split))
    }

    public func run(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil, timeout: Double = 60) throws -> CLI.Result {
        let (executable, arguments) = try NetworkLab.command(try self.arguments(arguments), in: namespace)
        return try CLI.run(arguments, executable: executable, environment: environment, input: input, timeout: timeout)
    }

    /// Runs a command that must succeed.
    @discardableResult
    public func must(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil, timeout: Double = 60) throws -> CLI.Result {
        let result = try run(arguments, environment: environment, input: input, timeout: timeout)
        guard result.succeeded else { throw CLI.Failure("\(name): \(result)") }
        return result
    }

    /// Starts a long-running command of this home (`log --follow`, `chat`) in the background.
    public func spawn(_ arguments: [String], environment: [String: String] = [:], pipeInput: Bool = false) throws -> Spawned {
        let (executable, arguments) = try NetworkLab.command(try self.arguments(arguments), in: namespace)
        return try Spawned(arguments, executable: executable, environment: environment, pipeInput: pipeInput)
    }

    public static func create(_ name: String, in scratch: Scratch) throws -> Home {
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
    public static func introduce(_ a: Home, _ b: Home) throws {
        try a.must(["contact", "add", b.code, "--name", b.name])
        try b.must(["contact", "add", a.code, "--name", a.name])
    }

    public func createGroup(_ title: String, with names: [String]) throws -> String {
        let object = try must(["group", "create", title, "--with"] + names + ["--json"]).object()
        guard let group = object["group"] as? String else { throw CLI.Failure("group create printed \(object)") }
        return group
    }

    /// The member IDs of a group as this home sees them (nil when it does not know the group).
    public func members(_ group: String) throws -> [String]? {
        let result = try run(["group", "members", group, "--json"])
        if result.status == 1, result.stderr.contains("no group is called") { return nil }
        return try result.array().compactMap { $0["id"] as? String }
    }

    /// `group list --json`, by group ID.
    public func groups() throws -> [String: [String: Any]] {
        var groups: [String: [String: Any]] = [:]
        for object in try must(["group", "list", "--json"]).array() {
            if let id = object["group"] as? String { groups[id] = object }
        }
        return groups
    }

    /// The group's history (empty when this home does not know the group yet).
    public func log(_ group: String) throws -> [LogLine] {
        let result = try run(["log", group, "--json"])
        if result.status == 1, result.stderr.contains("no group is called") { return [] }
        return try result.array().map(LogLine.init)
    }

    public func export(to file: String, extra: [String] = [], environment: [String: String] = [:]) throws {
        try must(["export", "--output", file] + extra, environment: environment)
    }

    /// Imports a file that must be accepted; returns the report.
    public func importReport(_ file: String, extra: [String] = [], environment: [String: String] = [:]) throws -> ImportReport {
        let result = try must(["import", file, "--json"] + extra, environment: environment)
        return try ImportReport(result.object())
    }

    /// The home's database file (for tests that look inside, or play a modified client).
    public var databasePath: String { (path as NSString).appendingPathComponent("dcgka.sqlite") }

    /// `dcgka log GROUP --follow --json` in the background: it prints the history, then every
    /// new line, keeping live links to the home's relays.
    public func follow(_ group: String) throws -> Follower {
        Follower(try spawn(["log", group, "--follow", "--json"]))
    }
}

/// `dcgka import --json`.
public struct ImportReport: CustomStringConvertible, Sendable {
    public var new: Int
    public var duplicate: Int
    public var rejected: Int
    public var ignored: Int
    public var equivocations: Int
    public var messages: Int
    public var events: Int
    public var joined: [String]
    public var invitations: [String]
    public var reasons: [String]

    public init(_ object: [String: Any]) throws {
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

    public var description: String {
        "new \(new), duplicate \(duplicate), rejected \(rejected), ignored \(ignored), equivocations \(equivocations), messages \(messages), events \(events), joined \(joined.count), reasons \(reasons)"
    }
}

/// A running `dcgka log GROUP --follow --json`: its output read while it runs.
public final class Follower: @unchecked Sendable {
    public let spawned: Spawned

    public init(_ spawned: Spawned) { self.spawned = spawned }

    /// The complete lines printed so far, parsed (a line still being written is left out).
    public func lines() -> [LogLine] {
        Self.parse(spawned.stdout)
    }

    static func parse(_ output: String) -> [LogLine] {
        var lines: [LogLine] = []
        for line in output.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let parsed = try? LogLine(object) else { continue }
            lines.append(parsed)
        }
        return lines
    }

    /// Waits until the printed lines satisfy `condition`; nil when the follower ended or
    /// `timeout` seconds passed first.
    public func waitFor(timeout: Double, _ condition: ([LogLine]) -> Bool) -> [LogLine]? {
        spawned.waitForOutput(timeout: timeout) { condition(Self.parse($0)) }.map(Self.parse)
    }

    /// Stops it (SIGTERM, then SIGKILL) and removes its output files; returns what it printed.
    @discardableResult
    public func stop() -> CLI.Result {
        spawned.stop(grace: 5)
        let result = spawned.result()
        spawned.cleanUp()
        return result
    }
}

/// A running `dcgka relay serve`: started with port 0 (or a given port), its address read from
/// the first line it prints; stopped by SIGTERM (graceful) or SIGKILL (a crash), and restarted on
/// the same folder and port.
public final class RelayProcess: @unchecked Sendable {
    /// The relay's folder (`--data`): its identity and, by default, its SQLite store.
    public let data: String
    /// Options after `--listen` and `--data` (`--store`, limits).
    public let options: [String]
    public private(set) var spawned: Spawned
    /// `dcgka-relay://HOST:PORT/RELAY-ID` as the relay printed it.
    public private(set) var address: String
    /// Earlier processes' output, kept for failure messages.
    private var history: [CLI.Result] = []
    /// Whether the current process's end is in `history`.
    private var recorded = false

    /// Options every test relay gets: loopback tests connect many clients from one address, and
    /// a client in the test process, which shares two cores with every suite running at the same
    /// time, may finish its half of the handshake long after the relay's default 10 s (the relay
    /// would then close the link right after it). Tests of the handshake limit set their own.
    public static let loopbackOptions = ["--connections-per-address", "1000", "--handshake-seconds", "120"]

    private init(data: String, options: [String], spawned: Spawned, address: String) {
        self.data = data
        self.options = options
        self.spawned = spawned
        self.address = address
    }

    /// Starts `dcgka relay serve --listen LISTEN --data DATA OPTIONS` and waits (at most
    /// `timeout` seconds) for its address on standard output.
    public static func start(
        data: String, listen: String = "127.0.0.1:0", options: [String] = RelayProcess.loopbackOptions, timeout: Double = 30,
        namespace: String? = nil
    ) throws -> RelayProcess {
        let (spawned, address) = try launch(data: data, listen: listen, options: options, timeout: timeout, namespace: namespace)
        let relay = RelayProcess(data: data, options: options, spawned: spawned, address: address)
        relay.namespace = namespace
        return relay
    }

    /// The network namespace it runs in (``NetworkLab``), nil for this process's own.
    public private(set) var namespace: String?

    private static func launch(
        data: String, listen: String, options: [String], timeout: Double, namespace: String? = nil
    ) throws -> (Spawned, String) {
        let (executable, arguments) = try NetworkLab.command(["relay", "serve", "--listen", listen, "--data", data] + options, in: namespace)
        let spawned = try Spawned(arguments, executable: executable)
        let output = spawned.waitForOutput(timeout: timeout) { $0.contains("\n") }
        guard let output, let line = output.split(separator: "\n").first, line.hasPrefix("dcgka-relay://") else {
            spawned.stop(grace: 5)
            let result = spawned.result()
            spawned.cleanUp()
            throw CLI.Failure("the relay did not print its address within \(timeout) s: \(result)")
        }
        return (spawned, String(line))
    }

    /// `HOST:PORT` of the address.
    public var authority: String {
        let rest = address.dropFirst("dcgka-relay://".count)
        return String(rest.prefix { $0 != "/" })
    }

    public var port: Int { Int(authority.split(separator: ":").last ?? "") ?? 0 }

    /// The relay's ID, the address's last part.
    public var relayID: String { String(address.split(separator: "/").last ?? "") }

    public var isRunning: Bool { spawned.isRunning }

    public var pid: Int32 { spawned.pid }

    /// SIGTERM and wait for the graceful end (SIGKILL past `grace` seconds).
    /// Returns how the process ended (stdout and stderr included).
    @discardableResult
    public func stop(grace: Double = 20) -> CLI.Result {
        spawned.stop(grace: grace)
        return finish()
    }

    /// SIGKILL now: no chance to finish anything (a crash, a power cut).
    @discardableResult
    public func crash() -> CLI.Result {
        spawned.kill()
        _ = spawned.wait(timeout: 10)
        return finish()
    }

    private func finish() -> CLI.Result {
        let result = spawned.result()
        if !recorded {
            history.append(result)
            recorded = true
        }
        return result
    }

    /// Starts it again on the same folder, port and options (after ``stop(grace:)`` or
    /// ``crash()``), retrying while the port is still held, for at most `timeout` seconds.
    /// Checks that the address is the same as before.
    public func restart(timeout: Double = 30) throws {
        if spawned.isRunning { stop() }
        spawned.cleanUp()
        let deadline = Date().addingTimeInterval(timeout)
        let previous = address
        while true {
            do {
                let (spawned, address) = try Self.launch(
                    data: data, listen: authority, options: options, timeout: max(1, deadline.timeIntervalSinceNow), namespace: namespace)
                self.spawned = spawned
                recorded = false
                guard address == previous else {
                    stop()
                    throw CLI.Failure("the restarted relay printed \(address), not \(previous)")
                }
                return
            } catch let error as CLI.Failure {
                guard Date() < deadline, error.description.contains("in use") else { throw error }
                usleep(250_000)
            }
        }
    }

    /// What the relay printed on standard error (logs) in every run so far.
    public var logs: String { (history.map(\.stderr) + (recorded ? [] : [spawned.stderr])).joined(separator: "\n--- restart ---\n") }

    /// Stops it if it still runs and removes its output files: call in a `defer`.
    public func cleanUp() {
        if spawned.isRunning { spawned.stop(grace: 10) }
        spawned.cleanUp()
    }
}

/// (sender, seq) pairs that occur more than once among a log's lines that carry a seq.
public func duplicateSeqs(_ lines: [LogLine]) -> [String] {
    var seen: [String: Int] = [:]
    for line in lines {
        guard let from = line.fromID, let seq = line.seq else { continue }
        seen["\(from.prefix(12))#\(seq)", default: 0] += 1
    }
    return seen.filter { $0.value > 1 }.keys.sorted()
}

/// SIGKILL to one process of ours, by its ID.
public func killHard(_ pid: Int32) {
    signalProcess(pid, SIGKILL)
}

/// A signal to one process of ours, by its ID (never to a group: `pid` must be positive).
public func signalProcess(_ pid: Int32, _ signal: Int32) {
    guard pid > 0 else { return }
    _ = kill(pid, signal)
}

public func sleep(seconds: Double) {
    guard seconds > 0 else { return }
    usleep(useconds_t(seconds * 1_000_000))
}

/// Runs blocking work (a CLI command, waiting for a process) off Swift's cooperative threads:
/// a test that blocks one of them (there are as many as cores) starves every other test in the
/// process, and live links that need them.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
