/// What a relay enforces (NETWORK.md §13.5), every value configurable; `dcgka relay info` prints
/// them, so clients and operators see the same numbers the relay checks.
public struct RelayLimits: Sendable, Equatable, Codable {
    /// The largest sync frame either side may send (§11), checked before anything is allocated.
    public var maximumFrameBytes: Int = 2 << 20
    /// The largest envelope (wire bytes) the relay stores.
    public var maximumEnvelopeBytes: Int = 1 << 20
    /// Token bucket per identity: envelopes per second, and the burst it allows.
    public var envelopesPerSecondPerIdentity: Double = 200
    public var envelopeBurstPerIdentity: Double = 2_000
    /// Token bucket per connection, for every message (a flood of `have` or `want` costs too).
    public var messagesPerSecondPerConnection: Double = 500
    public var messageBurstPerConnection: Double = 5_000
    public var connectionsPerIdentity: Int = 16
    public var connectionsPerAddress: Int = 64
    public var connectionsTotal: Int = 10_000
    public var subscriptionsPerConnection: Int = 1_024
    /// A connection whose peer does not read (bytes queued for it) past this is closed.
    public var pendingOutboundBytesPerConnection: Int = 8 << 20
    /// Groups whose create an identity may bring to this relay.
    public var groupsPerIdentity: Int = 1_000
    /// Identities the relay has never seen that it lets in per minute.
    public var newIdentitiesPerMinute: Int = 600
    /// Per group: stored bytes and envelopes.
    public var groupBytes: Int64 = 4 << 30
    public var groupEnvelopes: Int64 = 4_000_000
    /// Application payloads older than this are pruned (headers and signatures kept, §13.4).
    public var payloadRetentionSeconds: UInt64 = 30 * 86_400
    /// A link must finish its handshake within this many seconds.
    public var handshakeSeconds: Double = 10
    /// A connection that says nothing for this long is closed (clients ping well within it).
    public var idleSeconds: Double = 300

    public init() {}
}
