public import Device
public import Sync
public import DCGKAEncoding
public import DCGKACrypto
internal import Link
public import LinkIO
internal import WSClient
public import Logging
internal import NIOCore
internal import Synchronization
internal import CausalBroadcast

/// What one sync pass with a relay or a direct peer did.
public struct SyncReport: Sendable, Equatable, Codable {
    /// The relay's address, or the peer's `HOST:PORT` and ID.
    public var peer: String
    /// Envelopes given to the relay, and how many it acknowledged as stored.
    public var sent = 0
    public var acknowledged = 0
    /// Envelopes received, and how many were new to this device.
    public var received = 0
    public var new = 0
    /// Groups the relay told of that this device did not ask for (invitations).
    public var invited = 0
    public var joined = 0
    /// Invitations from non-contacts waiting for `dcgka group accept`.
    public var invitations = 0
    public var messages = 0
    /// Contacts whose key bundle the relay's directory had newer than mine.
    public var bundlesRefreshed = 0
    /// Why the link ended early, if it did.
    public var error: String?

    public init(peer: String) { self.peer = peer }

    /// Adds another pass's counts to these (several rounds with one peer).
    public mutating func add(_ other: SyncReport) {
        sent += other.sent
        acknowledged += other.acknowledged
        received += other.received
        new += other.new
        invited += other.invited
        joined += other.joined
        invitations = other.invitations
        messages += other.messages
        bundlesRefreshed += other.bundlesRefreshed
        error = other.error
    }
}

/// Why a sync with a relay failed, in words.
public enum RelayClientError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreachable(String)
    case refused(SyncErrorCode, String)
    case link(String)
    case timeout

    public var description: String {
        switch self {
        case .unreachable(let why): "the relay cannot be reached (\(why))"
        case .refused(let code, let text): "the relay refused: \(text) (\(code))"
        case .link(let why): "the link failed: \(why)"
        case .timeout: "the relay did not answer in time"
        }
    }
}

/// The device's side of a relay (NETWORK.md §11, §13): a secure link over a WebSocket, the sync
/// session over the device's log, invitations followed, acknowledgments clearing the outbox.
public struct RelayClient<Random: RandomNumberGenerator & Sendable>: Sendable {
    public let device: Device<Random>
    public let identity: IdentityKey
    public let logger: Logger

    public init(device: Device<Random>, identity: IdentityKey, logger: Logger = Logger(label: "dcgka.relay-client")) {
        self.device = device
        self.identity = identity
        self.logger = logger
    }

    /// One pass: push what the relay lacks, pull what I lack, follow invitations, until both sides
    /// have nothing more to say (a `ping` answered with nothing in between).
    public func sync(with address: RelayAddress, timeout: Duration = .seconds(60)) async throws -> SyncReport {
        let device = device
        return try await connect(address, timeout: timeout) { channel in
            var pass = try LinkPass(device: device, me: identity.id, peer: address.relay, report: SyncReport(peer: address.description))
            try await pass.run(&channel, follow: nil)
            return pass.report
        }
    }

    /// Stays connected: one pass, then subscriptions; new envelopes in my log (from this or any
    /// other process on the home) are pushed as the log grows, and the relay's pushes are taken
    /// in. Returns or throws when the link ends (the caller reconnects with backoff).
    public func follow(_ address: RelayAddress, onChange: @escaping @Sendable (SyncReport) -> Void) async throws {
        let device = device
        _ = try await connect(address, timeout: nil) { channel in
            var pass = try LinkPass(device: device, me: identity.id, peer: address.relay, report: SyncReport(peer: address.description))
            try await pass.run(&channel, follow: onChange)
            return true
        }
    }

    func connect<T: Sendable>(
        _ address: RelayAddress, timeout: Duration?, _ body: @escaping @Sendable (inout LinkChannel) async throws -> T
    ) async throws -> T {
        try await RelayLink.with(address, identity: identity, timeout: timeout, logger: logger, body)
    }
}

/// A secure link to a relay as a scoped resource: connect, authenticate both sides (§12), run
/// `body` with the channel, close. Errors come out as ``RelayClientError``.
public enum RelayLink {
    public static func with<T: Sendable>(
        _ address: RelayAddress, identity: IdentityKey, timeout: Duration?, logger: Logger,
        _ body: @escaping @Sendable (inout LinkChannel) async throws -> T
    ) async throws -> T {
        let result = ResultBox<T>()
        let url = "ws://\(address.authority)/link"
        let work: @Sendable () async throws -> Void = {
            do {
                try await WebSocketClient.connect(
                    url: url, configuration: .init(maxFrameSize: WebSocketLink.maximumWebSocketFrame), logger: logger
                ) { inbound, outbound, _ in
                    var iterator = inbound.messages(maxSize: WebSocketLink.maximumWebSocketFrame).makeAsyncIterator()
                    var random = SystemRandomNumberGenerator()
                    let handshake = try LinkHandshake.initiator(identity: identity, expectedPeer: address.relay, random: &random)
                    let link = try await WebSocketLink.establish(handshake, inbound: &iterator, outbound: outbound)
                    var channel = LinkChannel(link: link, iterator: iterator)
                    do {
                        result.set(.success(try await body(&channel)))
                    } catch {
                        result.set(.failure(error))
                    }
                    try? await outbound.close(.normalClosure, reason: nil)
                }
            } catch let error as RelayClientError {
                throw error
            } catch let error as WebSocketLinkError {
                throw RelayClientError.link(error.description)
            } catch {
                throw RelayClientError.unreachable("\(error)")
            }
        }
        if let timeout {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await work(); return true }
                group.addTask { try await Task.sleep(for: timeout); return false }
                let finished = try await group.next() ?? false
                group.cancelAll()
                if !finished { throw RelayClientError.timeout }
            }
        } else {
            try await work()
        }
        switch result.get() {
        case .success(let value): return value
        case .failure(let error as RelayClientError): throw error
        case .failure(let error as WebSocketLinkError): throw RelayClientError.link(error.description)
        case .failure(let error): throw error
        case nil: throw RelayClientError.link("the relay closed the connection during the handshake")
        }
    }
}

/// A value set once by the connection handler, read after it returns.
final class ResultBox<T: Sendable>: Sendable {
    private let value = Mutex<Result<T, any Error>?>(nil)
    func set(_ result: Result<T, any Error>) { value.withLock { $0 = result } }
    func get() -> Result<T, any Error>? { value.withLock { $0 } }
}

