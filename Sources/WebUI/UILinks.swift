internal import DCGKAEncoding
internal import DCGKACrypto
internal import Device
internal import Foundation
internal import Logging
internal import RelayClient
internal import Sync

/// The device's links while `dcgka ui` runs: a live link to every relay of the home, direct
/// links kept to devices the person named, an optional listener and LAN discovery. Each link
/// reconnects with backoff; the page sees whether each is up (``Snapshot``).
actor UILinks {
    struct LinkState: Sendable, Equatable {
        var connected = false
        var error: String?
    }

    /// What the transports panel shows.
    struct Snapshot: Sendable {
        var relays: [String: LinkState]
        var peers: [(address: String, state: LinkState)]
        var listening: String?
        var lan: Bool
        var lanPeers: [(contact: MemberID, address: String)]
        /// Some relay or direct link is up (the page's offline banner is the opposite).
        var online: Bool
    }

    private let device: Device<SystemRandomNumberGenerator>
    private let identity: IdentityKey
    private let logger: Logger
    private var relayTasks: [String: Task<Void, Never>] = [:]
    private var relayStates: [String: LinkState] = [:]
    private var peerOrder: [String] = []
    private var peerTasks: [String: Task<Void, Never>] = [:]
    private var peerStates: [String: LinkState] = [:]
    /// Devices that linked to my listener, by contact, with when their link last reported.
    /// A listener cannot tell when a quiet link ended, so such a link counts as up for two
    /// minutes after it last did something.
    private var inbound: [MemberID: ContinuousClock.Instant] = [:]
    private var listenTask: Task<Void, Never>?
    private var listening: String?
    private var listenPort: UInt16?
    private var lanTask: Task<Void, Never>?
    private var lanPeers: [MemberID: LANSighting] = [:]
    private let book = LANLinkBook()
    /// Grows with every change of state, so a watcher can tell the page.
    private(set) var version = 0

    init(device: Device<SystemRandomNumberGenerator>, identity: IdentityKey, logger: Logger) {
        self.device = device
        self.identity = identity
        self.logger = logger
    }

    func snapshot() -> Snapshot {
        let peers = peerOrder.map { ($0, peerStates[$0] ?? LinkState()) }
        let recent = ContinuousClock.now - .seconds(120)
        let online = relayStates.values.contains { $0.connected } || peers.contains { $0.1.connected } || inbound.values.contains { $0 > recent }
        return Snapshot(
            relays: relayStates, peers: peers, listening: listening, lan: lanTask != nil,
            lanPeers: lanPeers.values.sorted { $0.contact < $1.contact }.map { ($0.contact, "\($0.host):\($0.port)") },
            online: online)
    }

    private func changed() { version += 1 }

    // MARK: Relays

    /// Starts a link to every relay of the home that has none, and stops those of relays that
    /// were removed.
    func reconcileRelays() {
        let addresses = Set(((try? device.relays()) ?? []).map(\.address))
        for (address, task) in relayTasks where !addresses.contains(address) {
            task.cancel()
            relayTasks[address] = nil
            relayStates[address] = nil
            changed()
        }
        for address in addresses where relayTasks[address] == nil {
            guard let parsed = try? RelayAddress(parsing: address) else { continue }
            relayStates[address] = LinkState()
            relayTasks[address] = Task.detached { [device, identity, logger] in
                await RelayClient(device: device, identity: identity, logger: logger).keepFollowing(parsed) { error in
                    try? device.noteSync(parsed, error: error)
                    Task { await self.setRelay(address, LinkState(connected: error == nil, error: error)) }
                }
            }
            changed()
        }
    }

    private func setRelay(_ address: String, _ state: LinkState) {
        guard relayTasks[address] != nil, relayStates[address] != state else { return }
        relayStates[address] = state
        changed()
    }

    // MARK: Direct links (NETWORK.md §14.2)

    /// Keeps a link to the device at `address` (`HOST:PORT`).
    func addPeer(_ address: String) throws {
        let (host, port) = try RelayAddress.split(address)
        let label = "\(host):\(port)"
        guard peerTasks[label] == nil else { return }
        peerOrder.append(label)
        peerStates[label] = LinkState()
        peerTasks[label] = Task.detached { [device, identity, logger] in
            await PeerClient(device: device, identity: identity, logger: logger).keepFollowing(host: host, port: Int(port)) { error in
                Task { await self.setPeer(label, LinkState(connected: error == nil, error: error)) }
            }
        }
        changed()
    }

    func removePeer(_ address: String) {
        let label = (try? RelayAddress.split(address)).map { "\($0.0):\($0.1)" } ?? address
        peerTasks[label]?.cancel()
        peerTasks[label] = nil
        peerStates[label] = nil
        peerOrder.removeAll { $0 == label }
        changed()
    }

    private func setPeer(_ label: String, _ state: LinkState) {
        guard peerTasks[label] != nil, peerStates[label] != state else { return }
        peerStates[label] = state
        changed()
    }

    /// Accepts direct links from contacts on `host:port` (port 0: any free port) until stopped.
    func listen(host: String, port: Int) async throws {
        let (bound, continuation) = AsyncThrowingStream.makeStream(of: Int.self)
        let book = book
        listenTask = Task.detached { [device, identity, logger] in
            let client = PeerClient(device: device, identity: identity, logger: logger)
            do {
                try await client.listen(host: host, port: port) { port in
                    continuation.yield(port)
                } onLink: { peer, _, error in
                    guard error == nil else { return }
                    book.linked(from: peer)
                    Task { await self.inboundLink(peer) }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        for try await port in bound {
            listening = "\(host):\(port)"
            listenPort = UInt16(exactly: port)
            changed()
            return
        }
    }

    private func inboundLink(_ peer: MemberID) {
        if inbound[peer] == nil { changed() }
        inbound[peer] = .now
    }

    /// Contacts whose devices linked to my listener in the last two minutes.
    func inboundPeers() -> [MemberID] {
        let recent = ContinuousClock.now - .seconds(120)
        return inbound.filter { $0.value > recent }.keys.sorted()
    }

    // MARK: LAN discovery

    /// Announces this device on the LAN and links to the contacts found there (needs the
    /// listener, whose port it announces).
    func setLAN(_ on: Bool) throws {
        if !on {
            lanTask?.cancel()
            lanTask = nil
            lanPeers = [:]
            changed()
            return
        }
        guard lanTask == nil else { return }
        guard let port = listenPort, port > 0 else { throw UIError("LAN discovery needs the direct-link listener (start dcgka ui with --peer-listen)") }
        let book = book
        lanTask = Task.detached { [device, identity, logger] in
            let client = PeerClient(device: device, identity: identity, logger: logger)
            await client.followLAN(port: port, book: book) { sighting in
                Task { await self.sighted(sighting) }
            } onStatus: { _, _, _ in
            } onError: { _ in }
        }
        changed()
    }

    private func sighted(_ sighting: LANSighting) {
        guard lanTask != nil, lanPeers[sighting.contact] != sighting else { return }
        lanPeers[sighting.contact] = sighting
        changed()
    }

    /// Stops every link (the server is shutting down).
    func stop() {
        for task in relayTasks.values { task.cancel() }
        for task in peerTasks.values { task.cancel() }
        listenTask?.cancel()
        lanTask?.cancel()
    }
}

/// A sentence for the person using the page.
struct UIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
