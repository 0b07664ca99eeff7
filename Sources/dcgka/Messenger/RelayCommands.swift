import ArgumentParser
import DCGKAEncoding
import DCGKACrypto
import Device
import Sync
import Relay
import RelayServer
import RelayClient
import RelayStorage
import RelayPostgres
import Logging
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `dcgka relay …`: run a relay, ask one for its limits, and manage the relays this device uses.
struct RelayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay", abstract: "Run a relay, or manage the relays this device syncs with.",
        subcommands: [RelayServeCommand.self, RelayInfoCommand.self, RelayAddCommand.self, RelayListCommand.self, RelayRemoveCommand.self, RelayAcceptCommand.self])
}

struct RelayServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a relay: it stores and forwards envelopes it cannot read (NETWORK.md §13).",
        discussion: "The first line on standard output is the relay's address, dcgka-relay://HOST:PORT/RELAY-ID; give it to the people who will use it. SIGINT or SIGTERM stop it gracefully.")

    @Option(help: "Where to listen, HOST:PORT (port 0 picks a free one).") var listen = "127.0.0.1:7447"
    @Option(help: "The relay's folder: its identity and, by default, its SQLite store.") var data = "./dcgka-relay"
    @Option(help: "Where to keep envelopes: sqlite:PATH (default: DATA/relay.sqlite) or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (several relay processes may share one).") var store: String?
    @Option(help: "Serve Prometheus metrics on HOST:PORT at /metrics.") var metrics: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Option(help: "Connections allowed from one address (loopback tests raise it).") var connectionsPerAddress: Int?
    @Option(help: "Envelopes per second per identity (token bucket rate; the burst is ten seconds' worth).") var envelopesPerSecond: Double?
    @Option(help: "Messages per second per connection (token bucket rate; the burst is ten seconds' worth).") var messagesPerSecond: Double?
    @Option(help: "Pending bytes per connection before a slow reader is cut off.") var pendingOutboundBytes: Int?
    @Option(help: "Seconds without a message before a connection is closed.") var idleSeconds: Double?
    @Option(help: "Seconds a connection has to complete the link handshake.") var handshakeSeconds: Double?

    func run() async throws {
        do {
            let (host, port) = try RelayAddress.split(listen, allowingPortZero: true)
            var configuration = RelayServerConfiguration()
            configuration.host = host
            configuration.port = Int(port == 0 ? 0 : port)
            if let connectionsPerAddress { configuration.limits.connectionsPerAddress = connectionsPerAddress }
            if let envelopesPerSecond {
                configuration.limits.envelopesPerSecondPerIdentity = envelopesPerSecond
                configuration.limits.envelopeBurstPerIdentity = envelopesPerSecond * 10
            }
            if let messagesPerSecond {
                configuration.limits.messagesPerSecondPerConnection = messagesPerSecond
                configuration.limits.messageBurstPerConnection = messagesPerSecond * 10
            }
            if let pendingOutboundBytes { configuration.limits.pendingOutboundBytesPerConnection = pendingOutboundBytes }
            if let idleSeconds { configuration.limits.idleSeconds = idleSeconds }
            if let handshakeSeconds { configuration.limits.handshakeSeconds = handshakeSeconds }
            var logger = Logger(label: "dcgka.relay")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            let identity = try RelayServer.identity(in: data)
            let relayStore = try Self.openStore(store, data: data, logger: logger)
            if let metrics {
                let (metricsHost, metricsPort) = try RelayAddress.split(metrics)
                configuration.metricsHost = metricsHost
                configuration.metricsPort = Int(metricsPort)
            }
            let server = RelayServer(identity: identity, store: relayStore, configuration: configuration, logger: logger)
            try await server.run { address in
                FileHandle.standardOutput.write(Data("\(address)\n".utf8))
            }
        } catch let error as any CustomStringConvertible {
            FileHandle.standardError.write(Data("dcgka: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func openStore(_ location: String?, data: String, logger: Logger) throws -> any RelayStore {
        guard let location else {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            return try SQLiteRelayStore(path: (data as NSString).appendingPathComponent("relay.sqlite"))
        }
        if location.hasPrefix("sqlite:") { return try SQLiteRelayStore(path: String(location.dropFirst("sqlite:".count))) }
        if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") { return try PostgresRelayStore(url: location, logger: logger) }
        throw CLIError("unknown store \(location): use sqlite:PATH or postgres://USER@HOST:PORT/DATABASE")
    }
}

struct RelayInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show a relay's identity and published limits.")
    @Argument(help: "The relay's address, dcgka-relay://HOST:PORT/RELAY-ID.") var address: String
    @OptionGroup var output: JSONOption

    func run() async throws {
        try await runReportingAsync {
            let relay = try RelayAddress(parsing: address)
            let info = try await RelayInfoClient.fetch(relay)
            guard info.relay == RelayAddress.encode(relay.relay) else {
                throw CLIError("the server at \(relay.authority) is relay \(info.relay), not the one in the address")
            }
            if output.json {
                try Output.encodable(info)
            } else {
                let limits = info.limits
                Output.line("Relay \(relay)")
                Output.line("  sync protocol version \(info.version)")
                Output.line("  frame limit \(limits.maximumFrameBytes) bytes, envelope limit \(limits.maximumEnvelopeBytes) bytes")
                Output.line("  \(limits.envelopesPerSecondPerIdentity) envelopes/s per identity (burst \(Int(limits.envelopeBurstPerIdentity)))")
                Output.line("  \(limits.connectionsPerIdentity) connections per identity, \(limits.connectionsPerAddress) per address")
                Output.line("  \(limits.groupsPerIdentity) groups per identity; payloads kept \(limits.payloadRetentionSeconds / 86_400) days")
            }
        }
    }
}

struct RelayAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Sync this device's groups through a relay.")
    @OptionGroup var home: HomeOptions
    @Argument(help: "The relay's address, dcgka-relay://HOST:PORT/RELAY-ID.") var address: String

    func run() throws {
        try runReporting {
            let relay = try RelayAddress(parsing: address)
            let device = try home.open()
            try device.addRelay(relay)
            Output.line("Added \(relay). Run `dcgka sync` (or `dcgka chat`) to use it.")
        }
    }
}

struct RelayListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the relays this device syncs with.")
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try runReporting {
            let device = try home.open()
            let relays = try device.relays()
            let suggested = try device.suggestedRelays()
            let titles = Dictionary(try device.groups().map { ($0.id, $0.title) }, uniquingKeysWith: { a, _ in a })
            func scope(_ groups: [GroupID]) -> String {
                groups.isEmpty ? "every group" : groups.map { "\"\(titles[$0] ?? String(Output.hex($0).prefix(12)))\"" }.joined(separator: ", ")
            }
            if output.json {
                try Output.json([
                    "relays": relays.map { relay -> [String: Any] in
                        var entry: [String: Any] = ["address": relay.address, "added": Output.time(relay.addedAt),
                                                    "groups": relay.groups.map { Output.hex($0) }]
                        if let last = relay.lastSync { entry["last_sync"] = Output.time(last) }
                        if let error = relay.lastError { entry["last_error"] = error }
                        return entry
                    },
                    "suggested": suggested.map { ["address": $0.address, "groups": $0.groups.map { Output.hex($0) }] as [String: Any] },
                ] as [String: Any])
                return
            }
            if relays.isEmpty {
                Output.line("No relays. Add one with `dcgka relay add dcgka-relay://HOST:PORT/RELAY-ID`.")
            }
            for relay in relays {
                let last = relay.lastSync.map { "last sync \(Output.time($0))" } ?? "never synced"
                Output.line("\(relay.address)  for \(scope(relay.groups)); \(last)\(relay.lastError.map { "  (last error: \($0))" } ?? "")")
            }
            for relay in suggested {
                Output.line("\(relay.address)  suggested by \(scope(relay.groups)), not used: `dcgka relay accept \(relay.address)`")
            }
        }
    }
}

struct RelayRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Stop syncing through a relay.")
    @OptionGroup var home: HomeOptions
    @Argument(help: "The relay's address.") var address: String

    func run() throws {
        try runReporting {
            let relay = try RelayAddress(parsing: address)
            guard try home.open().removeRelay(relay) else { throw CLIError("\(relay) is not one of this device's relays") }
            Output.line("Removed \(relay).")
        }
    }
}

struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync", abstract: "One sync pass with every relay: push what they lack, pull what is new, then exit.")
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: JSONOption

    func run() async throws {
        try await runReportingAsync {
            let device = try home.open()
            let relays = try device.relays()
            guard !relays.isEmpty else { throw CLIError("no relays; add one with `dcgka relay add ADDRESS`") }
            let client = RelayClient(device: device, identity: try device.identityKey(), logger: Self.quietLogger)
            let addresses = try relays.map { try RelayAddress(parsing: $0.address) }
            let reports = await client.syncAll(addresses) { relay, error in try? device.noteSync(relay, error: error) }
            if output.json {
                try Output.encodable(reports.count == 1 ? AnyEncodable(reports[0]) : AnyEncodable(reports))
            } else {
                for report in reports {
                    if let error = report.error {
                        Output.line("\(report.peer): failed: \(error)")
                    } else {
                        var line = "\(report.peer): sent \(report.sent) (\(report.acknowledged) stored), received \(report.received) (\(report.new) new, \(report.messages) messages), \(report.joined) groups joined, \(report.invitations) invitations waiting"
                        if report.bundlesRefreshed > 0 { line += ", \(report.bundlesRefreshed) contacts' keys refreshed" }
                        Output.line(line)
                    }
                }
            }
            if reports.allSatisfy({ $0.error != nil }) { throw ExitCode(1) }
        }
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "dcgka.sync")
        logger.logLevel = .critical
        return logger
    }
}

/// Type-erased Encodable, for one JSON value that may be an object or a list.
struct AnyEncodable: Encodable {
    let encodeValue: (any Encoder) throws -> Void
    init<T: Encodable>(_ value: T) { encodeValue = value.encode }
    func encode(to encoder: any Encoder) throws { try encodeValue(encoder) }
}

/// `runReporting` for async commands.
func runReportingAsync(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        let text = String(describing: error)
        FileHandle.standardError.write(Data("dcgka: \(text)\n".utf8))
        throw ExitCode(1)
    }
}

/// `GET /info` of a relay: its identity and published limits.
enum RelayInfoClient {
    static func fetch(_ relay: RelayAddress) async throws -> RelayInfo {
        guard let url = URL(string: "http://\(relay.authority)/info") else { throw CLIError("bad address \(relay)") }
        let data: Data
        do {
            (data, _) = try await URLSession.shared.data(from: url)
        } catch {
            throw CLIError("the relay cannot be reached at \(relay.authority) (\(error.localizedDescription))")
        }
        do { return try JSONDecoder().decode(RelayInfo.self, from: data) } catch { throw CLIError("the server at \(relay.authority) did not answer as a dcgka relay") }
    }
}
