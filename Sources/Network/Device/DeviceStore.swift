public import DCGKAEncoding

/// Where a device keeps everything (NETWORK.md §10.1). The engine (``Device``) decides what to
/// read and write; a store only keeps records, inside transactions it runs as closures:
/// ``DeviceStore/write(_:)`` is one exclusive write transaction (SQLite `BEGIN IMMEDIATE`), so
/// two processes on one home never interleave inside it, and either everything the closure
/// wrote is committed or nothing is.
public protocol DeviceStore: Sendable {
    func read<T>(_ body: (any DeviceStoreTransaction) throws -> T) throws -> T
    func write<T>(_ body: (any DeviceStoreTransaction) throws -> T) throws -> T
    /// Moves everything committed into the main file and empties the write-ahead log, so that
    /// secrets the protocol deleted leave the disk (NETWORK.md §10.3). Called after writes.
    func purgeDeletedData() throws
}

/// The records of one transaction. Writes are allowed only inside ``DeviceStore/write(_:)``.
public protocol DeviceStoreTransaction {
    func profile() throws -> ProfileRecord?
    func saveProfile(_ profile: ProfileRecord) throws

    func contacts() throws -> [ContactRecord]
    func saveContact(_ contact: ContactRecord) throws

    func groups() throws -> [GroupRecord]
    func group(_ id: GroupID) throws -> GroupRecord?
    func saveGroup(_ group: GroupRecord) throws

    /// Appends to a group's envelope log; returns its position (increasing, in commit order).
    @discardableResult func appendLog(_ entry: LogRecord) throws -> Int64
    func logContains(group: GroupID, hash: Bytes32) throws -> Bool
    /// The hash of the envelope logged at a sender's seq, if any (fork detection).
    func logHash(group: GroupID, sender: MemberID, seq: UInt64) throws -> (hash: Bytes32, pruned: Bool)?
    /// Application envelopes received before `time` whose payloads are still held (§10.4).
    func unprunedApplicationEntries(receivedBefore time: UInt64, limit: Int) throws -> [LogRecord]
    /// Replaces a logged envelope's bytes: its pruned form, or its full form back.
    func replaceWire(position: Int64, wire: [UInt8], pruned: Bool) throws
    func logEntry(group: GroupID, hash: Bytes32) throws -> LogRecord?
    func logEntry(group: GroupID, sender: MemberID, seq: UInt64) throws -> LogRecord?
    /// A group's log in position order, after `position`, at most `limit` entries.
    func log(group: GroupID, after position: Int64, limit: Int) throws -> [LogRecord]
    /// `(sender, seq, hash)` of every logged envelope of a group (for version vectors).
    func logIndex(group: GroupID) throws -> [(sender: MemberID, seq: UInt64, hash: Bytes32)]
    func logCount(group: GroupID) throws -> Int
    /// The position of a group's newest log entry (0 when the log is empty).
    func lastLogPosition(group: GroupID) throws -> Int64

    /// Puts an envelope of mine in the outbox of every relay I use, one entry per relay
    /// (NETWORK.md §10.1, §14.1); with no relay yet, in a waiting entry that the first relay
    /// added takes over.
    func addToOutbox(group: GroupID, hash: Bytes32) throws
    /// Entries waiting for one relay's acknowledgment (by its ID), or for any relay (nil).
    func outboxCount(relay: MemberID?) throws -> Int
    /// A relay acknowledged these (stored durably): they leave that relay's outbox only.
    @discardableResult func removeFromOutbox(group: GroupID, hashes: [Bytes32], relay: MemberID) throws -> Int

    /// The relays this device syncs with.
    func relays() throws -> [RelayRecord]
    /// Adds a relay (a relay ID new here takes over every waiting outbox entry), or updates its
    /// groups, last sync and error.
    func saveRelay(_ relay: RelayRecord) throws
    /// Removes a relay; its outbox entries go with it (back to waiting when no relay is left).
    @discardableResult func deleteRelay(address: String) throws -> Bool

    /// Every member's newest relay list for a group (NETWORK.md §14.5), one per sender.
    func relaySuggestions(group: GroupID) throws -> [RelaySuggestion]
    func saveRelaySuggestion(_ suggestion: RelaySuggestion) throws

    /// Grants (NETWORK.md §11.2, §14.3) I made or was shown, as their wire bytes.
    func grants(group: GroupID) throws -> [[UInt8]]
    func saveGrant(group: GroupID, holder: MemberID, granter: MemberID, notAfter: UInt64, wire: [UInt8]) throws
    /// The participants of a group I carry (every ID its stored creates and adds name).
    func participants(group: GroupID) throws -> Set<MemberID>
    func addParticipants(group: GroupID, _ members: [MemberID]) throws

    /// Numbers that change whenever anything a client shows changes (the log, history, groups,
    /// contacts, relays, read marks), whichever process wrote it: one cheap read, for watchers.
    func changeMarks() throws -> [Int64]
    /// A device setting (`dcgka config`), nil when never set.
    func setting(_ key: String) throws -> String?
    func setSetting(_ key: String, _ value: String) throws

    @discardableResult func appendHistory(_ entry: HistoryRecord) throws -> Int64
    func history(group: GroupID, after id: Int64, limit: Int) throws -> [HistoryRecord]
    /// How many messages (not events) after `id` were sent by someone other than `me`, and the
    /// newest line's time: a group list's unread count, without reading (or opening) the lines.
    func historyActivity(group: GroupID, after id: Int64, me: MemberID) throws -> (unread: Int, lastTime: UInt64?, lastID: Int64)
    /// Deletes every history line that is past its group's disappearing-messages timer at `now`.
    @discardableResult func deleteDisappearedHistory(now: UInt64) throws -> Int

    func saveEvidence(group: GroupID, sender: MemberID, seq: UInt64, first: [UInt8], second: [UInt8], savedAt: UInt64) throws
    /// When evidence of `sender`'s fork was first kept here (seconds), if it was.
    func evidenceSavedAt(group: GroupID, sender: MemberID) throws -> UInt64?
    /// The groups whose fork pairs may still give a duty (not marked settled): the only ones a
    /// sync pass decodes for the equivocation rule.
    func groupsWithOpenEvidence() throws -> [GroupID]
    /// Marks a group's fork pairs settled (every equivocator out of my view: no duty) or open.
    /// Settled pairs are still kept and passed on.
    func setEvidenceSettled(group: GroupID, _ settled: Bool) throws
    func evidenceCount(group: GroupID) throws -> Int
    /// The fork pairs kept for a group (PROTOCOL.md §6.2), to pass on.
    func evidence(group: GroupID) throws -> [(first: [UInt8], second: [UInt8])]

    /// What a peer's last file or sync showed it holds of a group (its version vector, encoded).
    func peerVector(peer: MemberID, group: GroupID) throws -> [UInt8]?
    func savePeerVector(peer: MemberID, group: GroupID, vector: [UInt8]) throws
}

/// A relay the device syncs with (`dcgka relay add`), and how the last sync went.
public struct RelayRecord: Equatable, Sendable {
    /// The address in its text form, `dcgka-relay://HOST:PORT/RELAY-ID`.
    public var address: String
    public var relay: MemberID
    public var addedAt: UInt64
    public var lastSync: UInt64?
    public var lastError: String?
    /// The groups this relay carries for me; empty: every group I am in (`dcgka relay add`). A
    /// relay accepted from a group's suggestion carries that group only, so it does not learn of
    /// my other groups.
    public var groups: [GroupID]

    public init(
        address: String, relay: MemberID, addedAt: UInt64, lastSync: UInt64? = nil, lastError: String? = nil, groups: [GroupID] = []
    ) {
        self.address = address
        self.relay = relay
        self.addedAt = addedAt
        self.lastSync = lastSync
        self.lastError = lastError
        self.groups = groups
    }

    /// Whether this relay carries `group` for me.
    public func carries(_ group: GroupID) -> Bool { groups.isEmpty || groups.contains(group) }
}

/// One member's relay list for a group (NETWORK.md §14.5), the newest it sent.
public struct RelaySuggestion: Equatable, Sendable {
    public var group: GroupID
    public var sender: MemberID
    /// The sending time from the message content: the last-writer-wins order, then the sender ID.
    public var sentAt: UInt64
    public var relays: [String]

    public init(group: GroupID, sender: MemberID, sentAt: UInt64, relays: [String]) {
        self.group = group
        self.sender = sender
        self.sentAt = sentAt
        self.relays = relays
    }

    /// The last-writer-wins order of §14.5: sending time, then sender ID.
    public func isNewer(than other: RelaySuggestion) -> Bool {
        (sentAt, sender.raw) > (other.sentAt, other.sender.raw)
    }
}

/// This device's identity (NETWORK.md §10.1). Secrets are in their canonical encodings.
public struct ProfileRecord: Equatable, Sendable {
    public var name: String
    public var identity: [UInt8]
    /// The encoded ``DCGKACrypto/PrekeyStore``.
    public var prekeys: [UInt8]
    /// My newest signed bundle, encoded.
    public var bundle: [UInt8]
    public var createdAt: UInt64

    public init(name: String, identity: [UInt8], prekeys: [UInt8], bundle: [UInt8], createdAt: UInt64) {
        self.name = name
        self.identity = identity
        self.prekeys = prekeys
        self.bundle = bundle
        self.createdAt = createdAt
    }
}

public struct ContactRecord: Equatable, Sendable {
    public var id: MemberID
    public var name: String
    /// Their newest verified bundle, encoded.
    public var bundle: [UInt8]
    public var addedAt: UInt64

    public init(id: MemberID, name: String, bundle: [UInt8], addedAt: UInt64) {
        self.id = id
        self.name = name
        self.bundle = bundle
        self.addedAt = addedAt
    }
}

public struct GroupRecord: Equatable, Sendable {
    public enum Status: Int, Sendable {
        /// I am in it (or was, and was removed: the state tells).
        case joined = 0
        /// Someone who is not a contact invited me; the user decides (`dcgka group accept`).
        case invited = 1
        /// Not mine: a member granted me to carry it (NETWORK.md §14.3). Its envelopes are kept
        /// and passed on to its participants; nothing in it can be read here.
        case carried = 2
        /// An invitation the user refused: kept so that the same invitation, offered again by a
        /// relay or a peer, is not shown again; nothing of the group is kept or passed on.
        case declined = 3
    }

    public var id: GroupID
    public var title: String
    /// The encoded ``DCGKAGroup/Group``, nil while only invited.
    public var state: [UInt8]?
    public var status: Status
    /// The invitation (create or add of me) while invited: its log hash.
    public var invitation: Bytes32?
    public var invitedBy: MemberID?
    /// The group's suggested relays (NETWORK.md §14.5), newest list.
    public var relays: [String]
    /// When the title was set: (sending time, sender), the last-writer-wins order of §14.5.
    public var titleSetAt: UInt64
    public var titleSetBy: MemberID?
    public var relaysSetAt: UInt64
    /// Who set the relay list in force (nil: nobody, or every suggestion was dropped).
    public var relaysSetBy: MemberID?
    /// Disappearing messages (NETWORK.md §10.3): history lines older than this many seconds are
    /// deleted on this device; 0 keeps them.
    public var disappearAfter: UInt64 = 0
    public var createdAt: UInt64

    public init(
        id: GroupID, title: String, state: [UInt8]?, status: Status, invitation: Bytes32? = nil, invitedBy: MemberID? = nil,
        relays: [String] = [], titleSetAt: UInt64 = 0, titleSetBy: MemberID? = nil, relaysSetAt: UInt64 = 0, createdAt: UInt64
    ) {
        self.titleSetBy = titleSetBy
        self.relaysSetAt = relaysSetAt
        self.id = id
        self.title = title
        self.state = state
        self.status = status
        self.invitation = invitation
        self.invitedBy = invitedBy
        self.relays = relays
        self.titleSetAt = titleSetAt
        self.createdAt = createdAt
    }
}

/// One envelope of a group's log, in wire form (NETWORK.md §10.1).
public struct LogRecord: Equatable, Sendable {
    public var position: Int64
    public var group: GroupID
    public var sender: MemberID
    public var seq: UInt64
    public var hash: Bytes32
    public var kind: UInt8
    public var wire: [UInt8]
    public var receivedAt: UInt64
    /// Its payload is gone (past retention, or it arrived so); header and signature remain.
    public var isPruned: Bool

    public init(
        position: Int64 = 0, group: GroupID, sender: MemberID, seq: UInt64, hash: Bytes32, kind: UInt8, wire: [UInt8], receivedAt: UInt64,
        isPruned: Bool = false
    ) {
        self.isPruned = isPruned
        self.position = position
        self.group = group
        self.sender = sender
        self.seq = seq
        self.hash = hash
        self.kind = kind
        self.wire = wire
        self.receivedAt = receivedAt
    }
}

/// One line of what the user sees (NETWORK.md §10.1): a message or an event, in words.
public struct HistoryRecord: Equatable, Sendable {
    public enum Kind: Int, Sendable {
        case message = 0
        case event = 1
    }

    public var id: Int64
    public var group: GroupID
    public var kind: Kind
    public var sender: MemberID?
    public var seq: UInt64?
    /// The sender's own time for messages (from the content), else when it happened here.
    public var time: UInt64
    public var receivedAt: UInt64
    /// The message text, or the event in words (names resolved when shown).
    public var text: String
    /// For events: a short machine name (`joined`, `added`, `removed`, `unreadable`, ...).
    public var event: String?
    /// Members an event names (added, removed).
    public var subjects: [MemberID]

    public init(
        id: Int64 = 0, group: GroupID, kind: Kind, sender: MemberID?, seq: UInt64?, time: UInt64, receivedAt: UInt64,
        text: String, event: String? = nil, subjects: [MemberID] = []
    ) {
        self.id = id
        self.group = group
        self.kind = kind
        self.sender = sender
        self.seq = seq
        self.time = time
        self.receivedAt = receivedAt
        self.text = text
        self.event = event
        self.subjects = subjects
    }
}
