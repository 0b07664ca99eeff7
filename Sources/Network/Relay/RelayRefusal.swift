public import Sync

/// Why a relay refused something, as a typed reason (NETWORK.md §13.3, §13.5). Each maps to the
/// `error(code, text)` a client sees and to a metrics label.
public enum RelayRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    /// The envelope does not decode, is oversized, or names another group.
    case malformedEnvelope(String)
    case badSignature
    /// A create whose group ID does not bind its creator and member list (PROTOCOL.md §6.1).
    case unboundGroupID
    /// The group is unknown here and the envelope is not its create.
    case unknownGroup
    /// The sender is not a participant of the group (no create or add names it).
    case notParticipant
    /// The link's peer may not write this group (it is neither a participant nor a grant holder).
    case unauthorizedWriter
    case rateLimited
    case quotaExceeded(String)
    case tooManyConnections
    case tooManySubscriptions
    case slowReader
    case frameTooLarge
    case malformedFrame(String)
    case idle
    case shuttingDown

    public var code: SyncErrorCode {
        switch self {
        case .malformedEnvelope, .malformedFrame, .badSignature, .unboundGroupID: .malformed
        case .unknownGroup, .notParticipant, .unauthorizedWriter: .unauthorized
        case .rateLimited, .tooManyConnections, .tooManySubscriptions, .slowReader, .idle, .shuttingDown: .rateLimited
        case .quotaExceeded: .quotaExceeded
        case .frameTooLarge: .frameTooLarge
        }
    }

    /// A short stable name, for logs and metrics.
    public var reason: String {
        switch self {
        case .malformedEnvelope: "malformed_envelope"
        case .badSignature: "bad_signature"
        case .unboundGroupID: "unbound_group_id"
        case .unknownGroup: "unknown_group"
        case .notParticipant: "not_participant"
        case .unauthorizedWriter: "unauthorized_writer"
        case .rateLimited: "rate_limited"
        case .quotaExceeded: "quota_exceeded"
        case .tooManyConnections: "too_many_connections"
        case .tooManySubscriptions: "too_many_subscriptions"
        case .slowReader: "slow_reader"
        case .frameTooLarge: "frame_too_large"
        case .malformedFrame: "malformed_frame"
        case .idle: "idle"
        case .shuttingDown: "shutting_down"
        }
    }

    public var description: String {
        switch self {
        case .malformedEnvelope(let why): "malformed envelope: \(why)"
        case .badSignature: "an envelope's signature does not verify"
        case .unboundGroupID: "the create's group ID does not bind its creator and members"
        case .unknownGroup: "the group is not known here and the envelope is not its create"
        case .notParticipant: "the sender is not a participant of the group"
        case .unauthorizedWriter: "this identity may not write to the group"
        case .rateLimited: "too many envelopes or messages; back off and retry"
        case .quotaExceeded(let what): "quota exceeded: \(what)"
        case .tooManyConnections: "too many connections"
        case .tooManySubscriptions: "too many subscriptions on one connection"
        case .slowReader: "the connection does not read what the relay sends"
        case .frameTooLarge: "a frame is larger than the relay's limit"
        case .malformedFrame(let why): "malformed frame: \(why)"
        case .idle: "the connection was idle too long"
        case .shuttingDown: "the relay is shutting down"
        }
    }
}
