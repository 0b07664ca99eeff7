public import DCGKAEncoding
public import CausalBroadcast
public import GroupMessaging
public import KeyAgreement

/// What happened in the group, as the application sees it.
public enum GroupEvent: Equatable, Sendable {
    /// I joined: created by `creator`, or added by `adder`.
    case joined(by: MemberID)
    /// An application message, decrypted.
    case message(from: MemberID, seq: UInt64, bytes: [UInt8])
    /// An application message whose payload was pruned before it reached me (past its retention
    /// at the holder I got it from, §6.1): its key is kept, so a full copy arriving later is still
    /// shown as a ``message(from:seq:bytes:)``.
    case expired(from: MemberID, seq: UInt64)
    /// A message I cannot read (sent before I joined or after I left, or its key is gone).
    case undecryptable(from: MemberID, seq: UInt64, reason: UndecryptableReason)
    /// An envelope of a sender that was not a member in its own view just before it (it had
    /// processed its own removal, or was never added): it had no effect and is not shown (§4.2).
    case fromNonMember(MemberID, seq: UInt64)
    case membersAdded([MemberID], by: MemberID)
    case membersRemoved([MemberID], by: MemberID)
    /// A member refreshed its key material (post-compromise security).
    case updated(by: MemberID)
    /// I am no longer a member in my own view.
    case removedFromGroup(by: MemberID)
    /// A member showed different histories to different members; its conflicting envelope was rejected.
    case equivocation(MemberID)
    /// An envelope was rejected before delivery (bad signature, stranger, wrong group, ...).
    case rejected(BroadcastError)
    /// A delivered control message could not be processed; the group goes on without it.
    case processingFailed(sender: MemberID, seq: UInt64, error: GroupProcessingError)
    /// I can no longer follow `member`'s key ratchet since `operation` (a direct message I needed
    /// could not be decrypted, or was missing): what it sends is unreadable to me until recovery
    /// (§5.7). The envelope's membership effect was applied all the same.
    case lostRatchet(of: MemberID, at: OperationID, reason: DCGKAError)
    /// A member asked for the ratchet states it lost (§5.7). Show it: a request hands my ratchet
    /// state to whoever holds the requester's identity key, as a key change would.
    case resyncRequested(by: MemberID, generation: UInt64)
    /// I follow `member`'s ratchet again from its envelope `seq` on (its answer to my resync).
    case recovered(MemberID, at: UInt64)
    /// The view hash in `sender`'s control envelope `seq` is not the hash of the view my history
    /// gives it there (§5.6): my history or its envelope is not what the members hold. Never
    /// happens between honest members (the simulator counts it as a failure).
    case viewMismatch(sender: MemberID, seq: UInt64)
    /// The history in the welcome `adder` gave me differs from what the members hold (a view
    /// hash differed before any other member confirmed it): the group takes nothing more; discard
    /// it and ask another member to add this device again (§5.6).
    case welcomeRefuted(adder: MemberID)
}

/// Why a delivered control envelope had no effect.
public enum GroupProcessingError: Error, Equatable, Sendable {
    case undecodable(WireError)
    case protocolError(DCGKAError)
    case unknownAcknowledgedEnvelope
    /// A remove carried fork evidence that is not evidence (§6.2): the remove was processed
    /// without cutting anything off.
    case invalidForkEvidence
    /// My acknowledgment would exceed the envelope's payload limit.
    case acknowledgmentTooLarge(bytes: Int)
}

/// Why a local operation (create, add, remove, update, send) was refused. State is unchanged.
public enum GroupError: Error, Equatable, Sendable {
    case notAMember
    case invalidKeyBundle(MemberID, String)
    case protocolError(DCGKAError)
    case messaging(MessagingError)
    case invitationNotForMe
    /// My current epoch may be readable outside my view; update first (or use `send(_:prekeys:using:)`).
    case refreshRequired
    case invalidInvitation(String)
    /// The envelope this operation needs would exceed the payload limit (``Envelope/maximumPayloadBytes``).
    case payloadTooLarge(bytes: Int)
    /// My welcome was refuted (``GroupEvent/welcomeRefuted(adder:)``): this state is not to be used.
    case welcomeRefuted(adder: MemberID)
}
