import ArgumentParser
import DCGKAEncoding
import Device
import Foundation
import Logging
import RelayClient
import Sync
import Synchronization

/// `dcgka peer`: direct links between devices over TCP (NETWORK.md §14.2), no relay needed.
struct PeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer", abstract: "Link directly with other devices (no relay): listen for them, or connect to one.",
        subcommands: [PeerListenCommand.self, PeerConnectCommand.self])
}

struct PeerListenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Accept direct links from contacts and keep links to other devices up, passing envelopes live, until stopped.",
        discussion: """
            The first line on standard output is `listening on HOST:PORT`; a line follows for every link that comes up or \
            fails. Only contacts and members of your groups are served; each gets the groups it may have, so envelopes \
            travel on through you to devices you link with (a mesh). With --lan, the device announces itself on the local \
            network (UDP multicast, with a rotating tag only your contacts can recognise, never your identity in clear), \
            links to every contact it finds there, and prints `found NAME at HOST:PORT` for each. Stop it with Ctrl-C.
            """)
    @OptionGroup var home: HomeOptions
    @Option(help: "Where to accept links, HOST:PORT (port 0 picks a free one).") var listen = "0.0.0.0:7448"
    @Option(name: .long, parsing: .upToNextOption, help: "Devices to keep a link to, HOST:PORT each.") var connect: [String] = []
    @Flag(help: "Announce this device on the local network and link to the contacts found there.") var lan = false
    @Option(name: .customLong("lan-group"), help: .hidden) var lanGroup: String?
    @Option(name: .customLong("lan-interface"), help: .hidden) var lanInterface: String?

    func run() async throws {
        let device: Device<SystemRandomNumberGenerator>
        let client: PeerClient<SystemRandomNumberGenerator>
        let peers: [(host: String, port: Int)]
        let (host, port): (String, Int)
        var lanOptions = LANDiscoveryOptions()
        do {
            device = try home.open()
            client = PeerClient(device: device, identity: try device.identityKey(), logger: SyncCommand.quietLogger)
            let parsed = try RelayLinks.Peers(listen: listen, connect: connect)
            (host, port) = parsed.listen ?? ("0.0.0.0", 7448)
            peers = parsed.connect
            if lan {
                if let lanGroup {
                    let (group, port) = try RelayAddress.split(lanGroup)
                    (lanOptions.group, lanOptions.port) = (group, Int(port))
                }
                // Announced and heard on the interface links are accepted on, when that is one.
                lanOptions.interface = lanInterface ?? Self.interface(of: host)
                try lanOptions.check()
            }
        } catch {
            FileHandle.standardError.write(Data("dcgka: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let names = (try? device.names()) ?? [:]
        @Sendable func name(_ id: MemberID) -> String { names[id] ?? String(id.raw.hex.prefix(12)) }
        let status = PeerStatus()
        let book = LANLinkBook()
        let (bound, boundContinuation) = AsyncStream.makeStream(of: Int.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await client.listen(host: host, port: port) { bound in
                        Output.line("listening on \(host):\(bound)")
                        boundContinuation.yield(bound)
                        boundContinuation.finish()
                    } onLink: { peer, report, error in
                        if error == nil { book.linked(from: peer) }
                        status.report(name(peer), report, error)
                    }
                } catch {
                    FileHandle.standardError.write(Data("dcgka: cannot listen on \(listen): \(error)\n".utf8))
                    throw ExitCode(1)
                }
            }
            if lan {
                group.addTask { [lanOptions] in
                    var ports = bound.makeAsyncIterator()
                    guard let port = await ports.next(), let announced = UInt16(exactly: port), announced > 0 else { return }
                    await client.followLAN(port: announced, options: lanOptions, book: book) { sighting in
                        Output.line("found \(name(sighting.contact)) at \(sighting)")
                    } onStatus: { contact, report, error in
                        status.report(name(contact), report, error)
                    } onError: { error in
                        status.report("LAN discovery", nil, error)
                    }
                }
            }
            if !peers.isEmpty {
                group.addTask {
                    await client.followAll(peers) { label, error in
                        status.report(label, nil, error)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The listening host when it names one IPv4 interface (not every interface, not loopback).
    static func interface(of host: String) -> String? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }), host != "0.0.0.0", parts[0] != "127" else { return nil }
        return host
    }
}

/// Prints a line when a link's state changes (up, new envelopes, failed), not on every push.
final class PeerStatus: Sendable {
    private let last = Mutex<[String: String]>([:])

    func report(_ peer: String, _ report: SyncReport?, _ error: String?) {
        let line: String
        if let error {
            line = "\(peer): \(error)"
        } else if let report {
            line = "\(peer): linked; sent \(report.sent), received \(report.received) (\(report.new) new, \(report.messages) messages)"
        } else {
            line = "\(peer): linked"
        }
        let changed = last.withLock { state -> Bool in
            guard state[peer] != line else { return false }
            state[peer] = line
            return true
        }
        if changed { Output.line(line) }
    }
}

struct PeerConnectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect", abstract: "One sync pass with a device running `dcgka peer listen` (or `chat --listen`), then exit.")
    @OptionGroup var home: HomeOptions
    @Argument(help: "The device's HOST:PORT.") var address: String
    @Option(help: "The contact it must prove to be (otherwise any contact or member of your groups is accepted).") var peer: String?
    @OptionGroup var output: JSONOption

    func run() async throws {
        try await runReportingAsync {
            let device = try home.open()
            let (host, port) = try RelayAddress.split(address)
            let expected = try peer.map { try device.resolveContact($0).id }
            let client = PeerClient(device: device, identity: try device.identityKey(), logger: SyncCommand.quietLogger)
            let report = try await client.sync(host: host, port: Int(port), expectedPeer: expected)
            if output.json {
                try Output.encodable(report)
            } else {
                Output.line("\(address): sent \(report.sent), received \(report.received) (\(report.new) new, \(report.messages) messages), \(report.joined) groups joined, \(report.invitations) invitations waiting")
            }
        }
    }
}
