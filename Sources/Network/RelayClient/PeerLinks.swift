public import Device
public import Sync
public import DCGKAEncoding
public import DCGKACrypto
public import LinkIO
public import Logging

/// Why a direct link to a peer was refused or failed, in words.
public enum PeerLinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The identity at the other end is neither a contact nor in any of my groups.
    case stranger(MemberID)
    case link(String)

    public var description: String {
        switch self {
        case .stranger(let id): "the device at the other end (\(String(id.raw.hex.prefix(12)))) is not a contact and shares no group with you"
        case .link(let why): "the direct link failed: \(why)"
        }
    }
}

/// Direct links between devices (NETWORK.md §14.2, §14.3): the same secure link (§12) over TCP,
/// the same sync (§11) as with a relay. Each side gives the other the groups it may have, so
/// envelopes travel hop by hop through members (the mesh), invitations included.
public struct PeerClient<Random: RandomNumberGenerator & Sendable>: Sendable {
    public let device: Device<Random>
    public let identity: IdentityKey
    public let logger: Logger

    public init(device: Device<Random>, identity: IdentityKey, logger: Logger = Logger(label: "dcgka.peer")) {
        self.device = device
        self.identity = identity
        self.logger = logger
    }

    /// A peer may link with me when it is a contact or takes part in one of my groups; anyone
    /// else would get nothing from the sync anyway, and is turned away before it costs more.
    public func admits(_ peer: MemberID) throws -> Bool {
        if try device.contacts().contains(where: { $0.id == peer }) { return true }
        return try !device.groups(sharedWith: peer).isEmpty
    }

    /// One pass with the device listening at `host:port` (`expectedPeer`: the contact it must
    /// prove to be; nil accepts any identity that ``admits(_:)`` accepts), then the link closes.
    public func sync(host: String, port: Int, expectedPeer: MemberID? = nil, timeout: Duration = .seconds(60)) async throws -> SyncReport {
        try await withTimeout(timeout) {
            try await link(host: host, port: port, expectedPeer: expectedPeer, follow: nil)
        }
    }

    /// Stays linked with the device at `host:port`: one pass, then each side pushes what its log
    /// gains. Returns or throws when the link ends (the caller reconnects with ``Backoff``).
    public func follow(host: String, port: Int, expectedPeer: MemberID? = nil, onChange: @escaping @Sendable (SyncReport) -> Void) async throws {
        _ = try await link(host: host, port: port, expectedPeer: expectedPeer, follow: onChange)
    }

    /// Keeps a link to each address until cancelled, reconnecting with backoff.
    public func followAll(_ peers: [(host: String, port: Int)], onStatus: @escaping @Sendable (String, String?) -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            for peer in peers {
                group.addTask { await keepFollowing(host: peer.host, port: peer.port) { onStatus("\(peer.host):\(peer.port)", $0) } }
            }
        }
    }

    /// One device's live link until cancelled (``follow(host:port:expectedPeer:onChange:)``),
    /// reconnecting with ``Backoff``. `onStatus` hears nil while the link is up and brings news, a
    /// sentence when it failed or ended.
    public func keepFollowing(host: String, port: Int, onStatus: @escaping @Sendable (String?) -> Void) async {
        var backoff = Backoff(base: 0.5, cap: 10)
        var random = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do {
                try await follow(host: host, port: port) { _ in onStatus(nil) }
                onStatus("the device closed the link")
            } catch {
                onStatus("\(error)")
            }
            if started.duration(to: .now) > .seconds(10) { backoff.reset() }
            try? await Task.sleep(for: .seconds(backoff.next(using: &random)))
        }
    }

    /// Accepts direct links on `host:port` until cancelled; every admitted peer gets a followed
    /// link (one pass, then live pushes both ways).
    public func listen(
        host: String, port: Int, bound: @Sendable (Int) -> Void, onLink: @escaping @Sendable (MemberID, SyncReport, String?) -> Void
    ) async throws {
        let device = device
        let me = identity.id
        try await TCPLinks.listen(host: host, port: port, identity: identity, bound: bound) { channel in
            let peer = channel.link.peer
            guard try admits(peer) else {
                try? await channel.link.send([.error(.unauthorized, "not a contact")])
                onLink(peer, SyncReport(peer: "\(peer)"), PeerLinkError.stranger(peer).description)
                return
            }
            var pass = try LinkPass(device: device, me: me, peer: peer, report: SyncReport(peer: String(peer.raw.hex.prefix(12))))
            do {
                try await pass.run(&channel) { report in onLink(peer, report, nil) }
            } catch RelayClientError.link {
                // The peer closed the link (a one-pass `peer connect` does, once quiet).
                onLink(peer, pass.report, nil)
                return
            }
        }
    }

    /// One pass over a link that is already established, whatever carries it (the simulator's
    /// memory links, for instance): the same pass as over TCP or with a relay.
    public func pass<Channel: SyncChannel>(over channel: inout Channel) async throws -> SyncReport {
        var pass = try LinkPass(device: device, me: identity.id, peer: channel.link.peer, report: SyncReport(peer: "\(channel.link.peer)"))
        try await pass.run(&channel, follow: nil)
        return pass.report
    }

    func link(host: String, port: Int, expectedPeer: MemberID?, follow: (@Sendable (SyncReport) -> Void)?) async throws -> SyncReport {
        let device = device
        let me = identity.id
        do {
            return try await TCPLinks.connect(host: host, port: port, identity: identity, expectedPeer: expectedPeer) { channel in
                let peer = channel.link.peer
                guard try admits(peer) else { throw PeerLinkError.stranger(peer) }
                var pass = try LinkPass(device: device, me: me, peer: peer, report: SyncReport(peer: "\(host):\(port)"))
                try await pass.run(&channel, follow: follow)
                return pass.report
            }
        } catch let error as TCPLinkError {
            throw PeerLinkError.link(error.description)
        }
    }
}

/// Runs `body`, throwing ``RelayClientError/timeout`` past `timeout`.
func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask { try await Task.sleep(for: timeout); return nil }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw RelayClientError.timeout }
        return value
    }
}
