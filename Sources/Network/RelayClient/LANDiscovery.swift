public import Device
public import DCGKAEncoding
public import Logging
internal import NIOCore
internal import NIOPosix
internal import Synchronization
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#endif

// LAN discovery (NETWORK.md §14.2, issue 11 item 4): devices find their contacts on the local link
// and link to them directly, without announcing their identity in clear.
//
// - Every `interval` (2 s) a device sends a ``LANAnnouncement`` of its TCP listening port to a
//   UDP multicast group (239.255.77.77:7449 by default; TTL 1, so it stays on the link; loopback
//   on, so several devices on one host find each other; SO_REUSEADDR and SO_REUSEPORT, so several
//   processes on one host can listen). The announcement carries a fresh nonce and a tag that only
//   those who know the announcer's identity key can recognise (see ``LANAnnouncement`` for the
//   construction and its limits). IPv4 only. The interface is the one given (the CLI: its
//   `--lan-interface`, else the listening address when that names one interface), else the
//   kernel's route to the group.
// - A device recognises announcements of its contacts (not of other members of its groups) and
//   reports each contact once when it is found, again only when its address changes or after it
//   was gone (not announced for `lifetime`, 10 s).
// - Each contact found gets one followed link (§14.2: the sync of §11, then live pushes) with the
//   recognised contact as the expected peer of the handshake (§12), so a forged or replayed
//   announcement only costs a failed connection. The link is re-made with ``Backoff`` while the
//   contact keeps being announced, to its newest address. So that two devices that find each other
//   do not link twice, the one with the smaller identity (MemberID order) dials; the other dials only
//   when no link from that contact reached its listener within `grace` (3 intervals) of finding
//   it (the contact does not recognise it, or cannot reach it).
// - What a datagram costs is bounded: anything but exactly 44 bytes is dropped unread, at most
//   `maximumPerSecond` announcements a second are examined (two HMACs per contact each), and the
//   device's own announcements (looped back) are skipped by their nonce.

/// Where and how often to announce and listen.
public struct LANDiscoveryOptions: Sendable, Equatable {
    public static let defaultGroup = "239.255.77.77"
    public static let defaultPort = 7449

    /// The IPv4 multicast group.
    public var group: String
    public var port: Int
    /// The IPv4 address of the interface to announce and listen on; nil lets the kernel choose
    /// (the route to the group, usually the default route).
    public var interface: String?
    public var interval: Duration
    /// A contact not announced for this long is gone (its link is not re-made).
    public var lifetime: Duration
    /// How long the device with the larger identity waits for a link from a contact it found
    /// before it dials that contact itself.
    public var grace: Duration
    public var maximumPerSecond: Int

    public init(
        group: String = Self.defaultGroup, port: Int = Self.defaultPort, interface: String? = nil, interval: Duration = .seconds(2),
        lifetime: Duration = .seconds(10), grace: Duration = .seconds(6), maximumPerSecond: Int = 200
    ) {
        self.group = group
        self.port = port
        self.interface = interface
        self.interval = interval
        self.lifetime = lifetime
        self.grace = grace
        self.maximumPerSecond = maximumPerSecond
    }

    /// Checks the group (an IPv4 multicast address) and the interface (an IPv4 address of a
    /// local interface that supports multicast), before anything is bound.
    public func check() throws(LANDiscoveryError) {
        _ = try groupAddress()
        _ = try device()
    }

    func groupAddress() throws(LANDiscoveryError) -> SocketAddress {
        guard (1...65535).contains(port), let address = try? SocketAddress(ipAddress: group, port: port),
              case .v4 = address, address.isMulticast
        else { throw .badGroup("\(group):\(port)") }
        return address
    }

    func device() throws(LANDiscoveryError) -> NIONetworkDevice? {
        guard let interface else { return nil }
        guard let devices = try? System.enumerateDevices(),
              let device = devices.first(where: { device in
                  if case .v4 = device.address, device.address?.ipAddress == interface { true } else { false }
              })
        else { throw .noInterface(interface) }
        guard device.multicastSupported else { throw .noMulticast(interface) }
        return device
    }
}

/// A contact heard on the LAN: where its device accepts direct links.
public struct LANSighting: Sendable, Equatable, CustomStringConvertible {
    public let contact: MemberID
    public let host: String
    public let port: Int

    public init(contact: MemberID, host: String, port: Int) {
        self.contact = contact
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

public enum LANDiscoveryError: Error, Equatable, Sendable, CustomStringConvertible {
    case badGroup(String)
    case noInterface(String)
    case noMulticast(String)
    /// Joining the group failed (with no interface given, there may be no route to the group).
    case cannotJoin(group: String, interface: String?, String)
    /// The multicast socket closed (a send failed: the network went away, say).
    case closed

    public var description: String {
        switch self {
        case .badGroup(let group): "\(group) is not an IPv4 multicast group and port"
        case .noInterface(let address): "no local interface has the address \(address)"
        case .noMulticast(let address): "the interface of \(address) does not support multicast"
        case .cannotJoin(let group, let interface?, let why): "cannot join the multicast group \(group) on \(interface): \(why)"
        case .cannotJoin(let group, nil, let why):
            "cannot join the multicast group \(group) (\(why)); is there a route to it? Listen on one interface's address instead of every interface"
        case .closed: "the LAN discovery socket closed"
        }
    }
}

/// What was heard, sans-IO (times are passed in): each contact's newest address and when it was
/// last announced.
public struct LANSightings: Sendable {
    public let lifetime: Duration
    private var entries: [MemberID: (sighting: LANSighting, last: ContinuousClock.Instant)] = [:]

    public init(lifetime: Duration) {
        self.lifetime = lifetime
    }

    /// Records an announcement heard at `time`; true when it is news: the contact is new, was
    /// gone (not announced for `lifetime`), or moved to another address.
    public mutating func heard(_ sighting: LANSighting, at time: ContinuousClock.Instant) -> Bool {
        let previous = entries[sighting.contact]
        entries[sighting.contact] = (sighting, time)
        guard let previous else { return true }
        return previous.sighting != sighting || time - previous.last > lifetime
    }

    /// The contact's newest address while it is announced (heard within `lifetime` of `time`).
    public func current(_ contact: MemberID, at time: ContinuousClock.Instant) -> LANSighting? {
        guard let entry = entries[contact], time - entry.last <= lifetime else { return nil }
        return entry.sighting
    }
}

/// Which contacts have a LAN link task, and when a contact last linked to my listener: so a
/// contact is linked once, not once per announcement nor from both sides.
public final class LANLinkBook: Sendable {
    private struct State {
        var following: Set<MemberID> = []
        var linkedFrom: [MemberID: ContinuousClock.Instant] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// My listener linked with `peer` (it dialled me); call it from the listener's `onLink`.
    public func linked(from peer: MemberID) {
        state.withLock { $0.linkedFrom[peer] = .now }
    }

    func linked(from peer: MemberID, since time: ContinuousClock.Instant) -> Bool {
        state.withLock { $0.linkedFrom[peer].map { $0 >= time } ?? false }
    }

    /// True when no task follows `contact` yet (the caller starts one).
    func startFollowing(_ contact: MemberID) -> Bool {
        state.withLock { $0.following.insert(contact).inserted }
    }

    func stopFollowing(_ contact: MemberID) {
        _ = state.withLock { $0.following.remove(contact) }
    }
}

/// Announces this device's listening port on the LAN and recognises its contacts' announcements.
public final class LANDiscovery: Sendable {
    public let me: MemberID
    public let options: LANDiscoveryOptions
    private let sightings: Mutex<LANSightings>
    private let keys = Mutex<(contacts: [MemberID], keys: [LANAnnouncement.Key])>(([], []))
    /// My latest announcements' nonces (the group loops them back to me).
    private let mine = Mutex<[[UInt8]]>([])
    private let budget = Mutex<(second: ContinuousClock.Instant, count: Int)>((.now, 0))

    public init(me: MemberID, options: LANDiscoveryOptions = .init()) {
        self.me = me
        self.options = options
        sightings = Mutex(LANSightings(lifetime: options.lifetime))
    }

    /// The contact's newest address while it is announced.
    public func current(_ contact: MemberID) -> LANSighting? {
        sightings.withLock { $0.current(contact, at: .now) }
    }

    /// Announces `port` every interval and listens for announcements until cancelled (then throws
    /// `CancellationError`); `onFound` hears each contact found, once (again when it moved or
    /// was gone). `contacts` is read once per interval; `now` gives Unix seconds.
    ///
    /// - Throws: ``LANDiscoveryError`` (a bad group or interface, the socket closed), what
    ///   binding or joining the group threw.
    public func run(
        port: UInt16, now: @escaping @Sendable () -> UInt64, contacts: @escaping @Sendable () throws -> [MemberID],
        logger: Logger = Logger(label: "dcgka.lan"), onFound: @escaping @Sendable (LANSighting) -> Void
    ) async throws {
        let groupAddress = try options.groupAddress()
        let device = try options.device()
        let reusePort = NIOBSDSocket.Option(rawValue: SO_REUSEPORT)
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(reusePort), value: 1)
            .channelOption(.ipOption(.ip_multicast_loop), value: 1)
            .channelOption(.ipOption(.ip_multicast_ttl), value: 1)
            .bind(host: "0.0.0.0", port: options.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(
                        wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            guard let multicast = channel.channel as? any MulticastChannel else { throw LANDiscoveryError.closed }
            do {
                try await multicast.joinGroup(groupAddress, device: device).get()
            } catch {
                throw LANDiscoveryError.cannotJoin(group: "\(self.options.group)", interface: self.options.interface, "\(error)")
            }
            if let device, case .v4(let address) = device.address, let provider = channel.channel as? any SocketOptionProvider {
                try await provider.setIPMulticastIF(address.address.sin_addr).get()
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var random = SystemRandomNumberGenerator()
                    while true {
                        do {
                            try self.refreshKeys(contacts())
                        } catch {
                            logger.debug("LAN discovery: cannot read the contacts: \(error)")
                        }
                        let announcement = LANAnnouncement.make(identity: self.me, port: port, now: now(), random: &random)
                        self.mine.withLock { mine in
                            mine.append(announcement.nonce)
                            if mine.count > 8 { mine.removeFirst() }
                        }
                        try await outbound.write(AddressedEnvelope(remoteAddress: groupAddress, data: ByteBuffer(bytes: announcement.wireBytes)))
                        try await Task.sleep(for: self.options.interval)
                    }
                }
                group.addTask {
                    for try await datagram in inbound {
                        guard let sighting = self.recognise(datagram, now: now()) else { continue }
                        if self.sightings.withLock({ $0.heard(sighting, at: .now) }) { onFound(sighting) }
                    }
                    try Task.checkCancellation()
                    throw LANDiscoveryError.closed
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        }
    }

    private func refreshKeys(_ contacts: [MemberID]) {
        let contacts = contacts.filter { $0 != me }
        keys.withLock { state in
            guard state.contacts != contacts else { return }
            state = (contacts, contacts.map(LANAnnouncement.Key.init))
        }
    }

    /// The contact a datagram announces, after the cheap checks.
    private func recognise(_ datagram: AddressedEnvelope<ByteBuffer>, now: UInt64) -> LANSighting? {
        let bytes = datagram.data.readableBytesView
        guard bytes.count == LANAnnouncement.wireLength, withinBudget(),
              let announcement = try? LANAnnouncement(wireBytes: bytes),
              !mine.withLock({ $0.contains(announcement.nonce) }),
              let host = datagram.remoteAddress.ipAddress
        else { return nil }
        let keys = keys.withLock { $0.keys }
        guard let contact = announcement.recognise(among: keys, now: now) else { return nil }
        return LANSighting(contact: contact, host: host, port: Int(announcement.port))
    }

    private func withinBudget() -> Bool {
        budget.withLock { budget in
            let now = ContinuousClock.now
            if now - budget.second >= .seconds(1) { budget = (now, 0) }
            budget.count += 1
            return budget.count <= options.maximumPerSecond
        }
    }
}

extension PeerClient {
    /// LAN discovery (§14.2) until cancelled: announces `port` (where my listener accepts
    /// links), recognises contacts' announcements, and keeps one followed link to each contact
    /// found while it is announced (see the rules at the top of this file). The listener must
    /// tell `book` of every link it serves (``LANLinkBook/linked(from:)``).
    ///
    /// - Parameters:
    ///   - onFound: each contact found (again when it moved or was gone).
    ///   - onStatus: a link's progress (a report) or failure (a sentence), by contact.
    ///   - onError: discovery itself failed (it is restarted with backoff).
    public func followLAN(
        port: UInt16, options: LANDiscoveryOptions = .init(), book: LANLinkBook,
        onFound: @escaping @Sendable (LANSighting) -> Void,
        onStatus: @escaping @Sendable (MemberID, SyncReport?, String?) -> Void,
        onError: @escaping @Sendable (String) -> Void
    ) async {
        let me = identity.id
        let device = device
        let discovery = LANDiscovery(me: me, options: options)
        let (found, continuation) = AsyncStream.makeStream(of: LANSighting.self)
        await withDiscardingTaskGroup { group in
            group.addTask {
                var backoff = Backoff(base: 1, cap: 30)
                var random = SystemRandomNumberGenerator()
                while !Task.isCancelled {
                    let started = ContinuousClock.now
                    do {
                        try await discovery.run(port: port, now: device.clock, contacts: { try device.contacts().map(\.id) }, logger: logger) {
                            continuation.yield($0)
                        }
                    } catch is CancellationError {
                        break
                    } catch {
                        onError("\(error)")
                    }
                    if started.duration(to: .now) > .seconds(30) { backoff.reset() }
                    try? await Task.sleep(for: .seconds(backoff.next(using: &random)))
                }
                continuation.finish()
            }
            for await sighting in found {
                onFound(sighting)
                let contact = sighting.contact
                guard book.startFollowing(contact) else { continue }
                let foundAt = ContinuousClock.now
                group.addTask {
                    defer { book.stopFollowing(contact) }
                    if me > contact {
                        // The contact dials; I do only if no link from it came within the grace.
                        try? await Task.sleep(for: options.grace)
                        if book.linked(from: contact, since: foundAt - options.lifetime) { return }
                    }
                    var backoff = Backoff(base: 0.5, cap: 10)
                    var random = SystemRandomNumberGenerator()
                    while !Task.isCancelled, let sighting = discovery.current(contact) {
                        let started = ContinuousClock.now
                        do {
                            try await follow(host: sighting.host, port: sighting.port, expectedPeer: contact) { report in
                                onStatus(contact, report, nil)
                            }
                        } catch {
                            if Task.isCancelled { break }
                            onStatus(contact, nil, "\(error)")
                        }
                        if started.duration(to: .now) > .seconds(10) { backoff.reset() }
                        try? await Task.sleep(for: .seconds(backoff.next(using: &random)))
                    }
                }
            }
        }
    }
}
