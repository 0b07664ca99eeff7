import ArgumentParser
import DCGKAEncoding
import Device
import DeviceStorage
import Foundation
import RelayClient
import Sync

extension HistoryRenderer {
    func json(_ entry: HistoryRecord) -> [String: Any] {
        var object: [String: Any] = ["time": Timestamp.iso8601(entry.time), "received": Timestamp.iso8601(entry.receivedAt)]
        if let sender = entry.sender {
            object["from"] = sender == me ? (names[me] ?? "me") : (names[sender] ?? sender.raw.hex)
            object["from_id"] = sender.raw.hex
            object["mine"] = sender == me
        }
        if let seq = entry.seq { object["seq"] = seq }
        switch entry.kind {
        case .message:
            object["text"] = entry.text
        case .event:
            object["event"] = entry.event ?? "event"
            object["text"] = sentence(entry)
            if !entry.subjects.isEmpty {
                object["subjects"] = entry.subjects.map { name($0) }
                object["subject_ids"] = entry.subjects.map { $0.raw.hex }
            }
        }
        return object
    }
}

struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Send a message to a group (it goes out with the next export or sync).")

    @OptionGroup var home: HomeOptions
    @Argument(help: "The group: its title or an ID prefix.") var group: String
    @Argument(help: "The message.") var text: String

    func run() throws {
        try runReporting {
            var device = try home.open()
            let summary = try device.resolveGroup(group)
            try device.send(text: text, to: summary.id)
        }
    }
}

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Show a group's messages and events (--follow: keep showing new ones).")

    @OptionGroup var home: HomeOptions
    @Argument(help: "The group: its title or an ID prefix.") var group: String
    @OptionGroup var output: JSONOption
    @Flag(help: "Keep running and show new lines as they arrive.") var follow = false

    func run() throws {
        try runReporting {
            let device = try home.open()
            let summary = try RelayLinks.resolve(group, device: device, syncing: follow)
            let renderer = HistoryRenderer(names: try device.names(), me: try device.me().id)
            let entries = try device.history(of: summary.id)
            if output.json, !follow {
                try Output.json(entries.map(renderer.json))
                return
            }
            var last: Int64 = 0
            for entry in entries {
                if output.json { try Output.json(renderer.json(entry)) } else { Output.line(renderer.line(entry)) }
                last = entry.id
            }
            guard follow else { return }
            RelayLinks.start(device)
            while true {
                Thread.sleep(forTimeInterval: 0.3)
                let renderer = HistoryRenderer(names: try device.names(), me: try device.me().id)
                for entry in try device.history(of: summary.id, after: last) {
                    if output.json { try Output.json(renderer.json(entry)) } else { Output.line(renderer.line(entry)) }
                    last = entry.id
                }
            }
        }
    }
}

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Chat in a group: messages appear as they arrive; type a line and press Enter to send.")

    @OptionGroup var home: HomeOptions
    @Argument(help: "The group: its title or an ID prefix.") var group: String
    @Option(help: "Also accept direct links from contacts on HOST:PORT (as `dcgka peer listen`).") var listen: String?
    @Option(name: .long, parsing: .upToNextOption, help: "Also keep direct links to these devices, HOST:PORT each.") var connect: [String] = []

    func run() throws {
        try runReporting {
            var device = try home.open()
            let peers = try RelayLinks.Peers(listen: listen, connect: connect)
            RelayLinks.start(device, peers: peers)
            let summary = try RelayLinks.resolve(group, device: device, syncing: true, waitingForPeers: !peers.isEmpty)
            let groupID = summary.id
            let renderer = HistoryRenderer(names: try device.names(), me: try device.me().id)
            var last: Int64 = 0
            for entry in try device.history(of: groupID) {
                Output.line(renderer.line(entry))
                last = entry.id
            }
            Output.line("-- \(summary.title): type a message and press Enter; /quit to leave --")
            // New lines from anyone (this process, a `dcgka import` in another terminal, ...)
            // are shown by a watcher with its own connection, within a second.
            let databasePath = home.databasePath
            let start = last
            let watcher = Thread {
                guard let store = try? SQLiteDeviceStore(path: databasePath) else { return }
                let reader = Device(store: store, clock: { Clock.now() }, random: SystemRandomNumberGenerator())
                var seen = start
                while true {
                    Thread.sleep(forTimeInterval: 0.3)
                    guard let names = try? reader.names(), let me = try? reader.me().id,
                          let entries = try? reader.history(of: groupID, after: seen) else { continue }
                    let renderer = HistoryRenderer(names: names, me: me)
                    for entry in entries {
                        Output.line(renderer.line(entry))
                        seen = entry.id
                    }
                }
            }
            watcher.start()
            RelayLinks.start(device)
            while let line = readLine() {
                let text = line.trimmingCharacters(in: .whitespaces)
                if text.isEmpty { continue }
                if text == "/quit" { break }
                do {
                    try device.send(text: text, to: groupID)
                    LogActivity.shared.changed()
                } catch {
                    FileHandle.standardError.write(Data("dcgka: \(error)\n".utf8))
                }
            }
            // Let the watcher show what was just sent before leaving.
            Thread.sleep(forTimeInterval: 0.4)
        }
    }
}

/// Live links to the home's relays for `chat` and `log --follow` (subscribe, push, reconnect
/// with backoff), in the background while the command reads and prints.
enum RelayLinks {
    /// The group by title or ID prefix; one that is not here yet may be waiting at a relay (an
    /// invitation): with relays, a sync pass runs first.
    static func resolve(
        _ name: String, device: Device<SystemRandomNumberGenerator>, syncing: Bool, waitingForPeers: Bool = false
    ) throws -> Device<SystemRandomNumberGenerator>.GroupSummary {
        if let found = try? device.resolveGroup(name) { return found }
        // Direct links run in the background: a group on its way over one gets a while to arrive.
        if waitingForPeers {
            for _ in 0..<100 {
                Thread.sleep(forTimeInterval: 0.2)
                if let found = try? device.resolveGroup(name) { return found }
            }
        }
        guard syncing, let relays = try? device.relays(), !relays.isEmpty, let identity = try? device.identityKey() else {
            return try device.resolveGroup(name)
        }
        let client = RelayClient(device: device, identity: identity, logger: SyncCommand.quietLogger)
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            for relay in relays {
                guard let address = try? RelayAddress(parsing: relay.address) else { continue }
                _ = try? await client.sync(with: address, timeout: .seconds(20))
            }
            done.signal()
        }
        done.wait()
        return try device.resolveGroup(name)
    }

    /// Direct links a live command keeps beside its relays (NETWORK.md §14.2).
    struct Peers {
        var listen: (host: String, port: Int)?
        var connect: [(host: String, port: Int)]
        var isEmpty: Bool { listen == nil && connect.isEmpty }

        init(listen: String?, connect: [String]) throws {
            self.listen = try listen.map { text in
                let (host, port) = try RelayAddress.split(text, allowingPortZero: true)
                return (host, Int(port))
            }
            self.connect = try connect.map { text in
                let (host, port) = try RelayAddress.split(text)
                return (host, Int(port))
            }
        }
    }

    /// Starts the direct links: listening for contacts, and links kept to other devices.
    static func start(_ device: Device<SystemRandomNumberGenerator>, peers: Peers) {
        guard !peers.isEmpty, let identity = try? device.identityKey() else { return }
        let client = PeerClient(device: device, identity: identity, logger: SyncCommand.quietLogger)
        if let listen = peers.listen {
            Task.detached {
                do {
                    try await client.listen(host: listen.host, port: listen.port, bound: { _ in }, onLink: { _, _, _ in })
                } catch {
                    FileHandle.standardError.write(Data("dcgka: cannot listen on \(listen.host):\(listen.port): \(error)\n".utf8))
                }
            }
        }
        if !peers.connect.isEmpty {
            let connect = peers.connect
            Task.detached { await client.followAll(connect) { _, _ in } }
        }
    }

    static func start(_ device: Device<SystemRandomNumberGenerator>) {
        guard let relays = try? device.relays().compactMap({ try? RelayAddress(parsing: $0.address) }), !relays.isEmpty,
              let identity = try? device.identityKey()
        else { return }
        let client = RelayClient(device: device, identity: identity, logger: SyncCommand.quietLogger)
        Task.detached {
            await client.followAll(relays) { relay, error in
                if let error { try? device.noteSync(relay, error: error) } else { try? device.noteSync(relay, error: nil) }
            }
        }
    }
}
