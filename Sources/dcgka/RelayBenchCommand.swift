import ArgumentParser
import Benchmarking
import Sync
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `dcgka bench relay`: issue 10's relay benchmarks (BENCHMARKS.md).
struct RelayBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Durable ingest, accept-to-ack latency, fan-out, catch-up and idle-connection memory of a relay.",
        discussion: """
            With no arguments it starts its own SQLite relay (a `dcgka relay serve` child process in a temporary \
            folder, limits raised for the load); --store postgres://… starts it on PostgreSQL instead; --relay ADDRESS \
            uses a relay that runs (its memory is then not measured). Build in release mode.
            """)

    @Option(help: "A running relay to measure, dcgka-relay://HOST:PORT/RELAY-ID.") var relay: String?
    @Option(help: "The store of the relay this command starts (default: SQLite in its folder).") var store: String?
    @Option(help: "Envelopes to ingest (spread over the writers); the catch-up pulls them all.") var envelopes = 100_000
    @Option(help: "Writer links during ingest.") var writers = 4
    @Option(help: "Envelopes per pushed batch during ingest.") var batch = 64
    @Option(help: "Rate of the paced accept-to-ack run (envelopes/s).") var pacedRate = 1_000
    @Option(help: "Subscribed readers in the fan-out run.") var readers = 100
    @Option(help: "Idle connections for the memory measurement.") var idle = 1_000
    @Flag(help: "Print one JSON object.") var json = false

    func run() async throws {
        raiseOpenFileLimit()
        var child: RelayChild?
        let address: RelayAddress
        let storeName: String
        if let relay {
            address = try RelayAddress(parsing: relay)
            storeName = "external"
        } else {
            let started = try RelayChild.start(store: store)
            child = started
            address = started.address
            storeName = store.map { $0.hasPrefix("postgres") ? "postgresql" : "sqlite" } ?? "sqlite"
        }
        defer { child?.stop() }
        var options = RelayBench.Options()
        options.ingestEnvelopes = envelopes
        options.writers = writers
        options.batch = batch
        options.pacedRate = pacedRate
        options.readers = readers
        options.idleConnections = idle
        var measureRSS: (@Sendable () -> Int?)?
        if let pid = child?.pid { measureRSS = { RelayChild.rss(pid) } }
        let report = try await RelayBench.run(
            relay: address, store: storeName, options: options, relayRSS: measureRSS,
            progress: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
        if json {
            try Output.encodable(report)
        } else {
            print("relay store: \(report.store)")
            print(String(format: "ingest: %d envelopes, %.0f envelopes/s (batches of %d: ack p50 %.1f ms, p99 %.1f ms)",
                         report.ingestEnvelopes, report.ingestEnvelopesPerS, batch, report.ingestBatchAckP50Ms, report.ingestBatchAckP99Ms))
            print(String(format: "accept-to-ack at %d envelopes/s: p50 %.2f ms, p99 %.2f ms", report.pacedRate, report.ackP50Ms, report.ackP99Ms))
            print(String(format: "fan-out to %d readers: p50 %.1f ms, p99 %.1f ms", report.fanoutReaders, report.fanoutP50Ms, report.fanoutP99Ms))
            print(String(format: "catch-up of %d envelopes: %.0f envelopes/s (client verifying signatures: %.0f/s)",
                         report.catchupEnvelopes, report.catchupEnvelopesPerS, report.catchupVerifiedEnvelopesPerS))
            if let bytes = report.idleConnectionBytes {
                print(String(format: "%d idle connections: %.1f KB of relay memory each", report.idleConnections, bytes / 1024))
            }
        }
    }

    func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// A `dcgka relay serve` child in a temporary folder, limits raised for load.
final class RelayChild {
    let folder: String
    let address: RelayAddress

    private init(folder: String, address: RelayAddress) {
        self.folder = folder
        self.address = address
    }

    static func start(store: String?) throws -> RelayChild {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-bench-relay-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let output = (folder as NSString).appendingPathComponent("relay.out")
        FileManager.default.createFile(atPath: output, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        if let path = Bundle.main.executablePath { process.executableURL = URL(fileURLWithPath: path) }
        var arguments = [
            "relay", "serve", "--listen", "127.0.0.1:0", "--data", (folder as NSString).appendingPathComponent("data"),
            "--log-level", "error", "--connections-per-address", "100000", "--envelopes-per-second", "1000000000",
            "--messages-per-second", "1000000000", "--pending-outbound-bytes", "\(256 << 20)",
        ]
        if let store { arguments += ["--store", store] }
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle.standardError
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: output, encoding: .utf8), let line = text.split(separator: "\n").first {
                let child = RelayChild(folder: folder, address: try RelayAddress(parsing: String(line)))
                return child.adopt(process)
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.terminate()
        throw CLIError("the relay did not start (see its messages above)")
    }

    private var running: Process?
    var pid: Int32? { running?.processIdentifier }
    private func adopt(_ process: Process) -> RelayChild {
        running = process
        return self
    }

    func stop() {
        guard let running else { return }
        running.terminate()
        running.waitUntilExit()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Resident memory of a process (Linux `/proc/PID/status`), in bytes.
    static func rss(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.filter(\.isNumber)
            return Int(digits).map { $0 * 1024 }
        }
        return nil
    }
}
