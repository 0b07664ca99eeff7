public import Device
public import DCGKAEncoding
internal import Foundation
internal import GRDB
internal import Crypto
internal import _CryptoExtras

/// Why the store could not be opened or used. `description` is the CLI's sentence.
public enum DeviceStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The home was written by a newer dcgka (its schema has migrations this one does not know).
    case newerVersion
    /// Another process held the database past the bounded wait.
    case locked(seconds: Double)
    case cannotOpen(String)
    case sqlite(String)
    case corrupt(String)
    /// The home is locked with a passphrase and none was given.
    case passphraseRequired
    case wrongPassphrase

    public var description: String {
        switch self {
        case .newerVersion: "this home was written by a newer version of dcgka; update dcgka to use it"
        case .locked(let seconds): "the home's database stayed locked by another dcgka process for \(Int(seconds)) s; try again"
        case .cannotOpen(let why): "the home's database cannot be opened (\(why))"
        case .sqlite(let why): "the home's database failed (\(why))"
        case .corrupt(let why): "the home's database holds a damaged record (\(why))"
        case .passphraseRequired: "this home is locked with a passphrase; set DCGKA_PASSPHRASE or run on a terminal to be asked"
        case .wrongPassphrase: "wrong passphrase for this home"
        }
    }
}

/// The device's SQLite store (NETWORK.md §10): GRDB over a WAL database, versioned migrations,
/// `secure_delete` on every connection, and a truncating checkpoint after writes so that what
/// the protocol deleted leaves both the database file and its write-ahead log (§10.3).
public final class SQLiteDeviceStore: DeviceStore {
    let writer: any DatabaseWriter
    public let path: String?
    public let busyTimeout: Double
    /// Seals the secret columns when the home is locked (NETWORK.md §10.3).
    let sealer: ColumnSealer?

    /// Whether the home is locked with a passphrase.
    public var isLocked: Bool { sealer != nil }

    /// Opens (creating and migrating when needed) the database at `path`; nil for a private
    /// in-memory database (tests). A locked home needs its `passphrase`; `lockWith` locks a
    /// home that has no identity yet (`dcgka init --passphrase`).
    public init(path: String?, busyTimeout: Double = 10, passphrase: String? = nil, lockWith: String? = nil) throws {
        self.path = path
        self.busyTimeout = busyTimeout
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        do {
            if let path {
                writer = try DatabasePool(path: path, configuration: configuration)
            } else {
                writer = try DatabaseQueue(configuration: configuration)
            }
        } catch {
            throw Self.translate(error, timeout: busyTimeout, opening: true)
        }
        do {
            let migrator = Self.migrator
            let superseded = try writer.read { db in try migrator.hasBeenSuperseded(db) }
            if superseded { throw DeviceStoreError.newerVersion }
            try migrator.migrate(writer)
            sealer = try Self.unlock(writer, passphrase: passphrase, lockWith: lockWith)
        } catch let error as DeviceStoreError {
            throw error
        } catch {
            throw Self.translate(error, timeout: busyTimeout, opening: true)
        }
    }

    /// The lock: a random 32-byte data key, sealed under scrypt(passphrase) (N = 2^15, r = 8,
    /// p = 1), seals the identity, the prekeys, every group state and every history text.
    static func unlock(_ writer: any DatabaseWriter, passphrase: String?, lockWith: String?) throws -> ColumnSealer? {
        try writer.writeWithoutTransaction { db in
            var result: ColumnSealer?
            try db.inTransaction(.immediate) {
                if let row = try Row.fetchOne(db, sql: "SELECT * FROM lock WHERE id = 1") {
                    guard let passphrase = passphrase ?? lockWith else { throw DeviceStoreError.passphraseRequired }
                    let kek = try ColumnSealer.derive(
                        passphrase, salt: Array(row["salt"] as Data), logN: row["logN"], r: row["r"], p: row["p"])
                    guard let key = try? kek.open(Array(row["sealedKey"] as Data), context: "lock") else {
                        throw DeviceStoreError.wrongPassphrase
                    }
                    result = ColumnSealer(key: key)
                } else if let lockWith {
                    guard try Row.fetchOne(db, sql: "SELECT id FROM profile") == nil else {
                        throw DeviceStoreError.cannotOpen("an existing home cannot be locked after the fact")
                    }
                    var generator = SystemRandomNumberGenerator()
                    let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    let kek = try ColumnSealer.derive(lockWith, salt: salt, logN: 15, r: 8, p: 1)
                    try db.execute(
                        sql: "INSERT INTO lock (id, salt, logN, r, p, sealedKey) VALUES (1, ?, 15, 8, 1, ?)",
                        arguments: [Data(salt), Data(kek.seal(key, context: "lock"))])
                    result = ColumnSealer(key: key)
                }
                return .commit
            }
            return result
        }
    }

    /// The schema, one migration per release from the first on.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE profile (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    name TEXT NOT NULL, identity BLOB NOT NULL, prekeys BLOB NOT NULL, bundle BLOB NOT NULL,
                    createdAt INTEGER NOT NULL);
                CREATE TABLE contact (
                    id BLOB PRIMARY KEY, name TEXT NOT NULL, bundle BLOB NOT NULL, addedAt INTEGER NOT NULL);
                CREATE TABLE chatGroup (
                    id BLOB PRIMARY KEY, title TEXT NOT NULL, state BLOB, status INTEGER NOT NULL,
                    invitation BLOB, invitedBy BLOB, relays TEXT NOT NULL DEFAULT '',
                    titleSetAt INTEGER NOT NULL DEFAULT 0, titleSetBy BLOB, relaysSetAt INTEGER NOT NULL DEFAULT 0,
                    disappearAfter INTEGER NOT NULL DEFAULT 0, createdAt INTEGER NOT NULL);
                CREATE TABLE envelope (
                    position INTEGER PRIMARY KEY AUTOINCREMENT,
                    groupID BLOB NOT NULL, sender BLOB NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
                    kind INTEGER NOT NULL, wire BLOB NOT NULL, receivedAt INTEGER NOT NULL,
                    pruned INTEGER NOT NULL DEFAULT 0,
                    UNIQUE (groupID, hash));
                CREATE INDEX envelopeBySenderSeq ON envelope (groupID, sender, seq);
                CREATE INDEX envelopeToPrune ON envelope (pruned, kind, receivedAt);
                CREATE TABLE outbox (
                    groupID BLOB NOT NULL, hash BLOB NOT NULL, transport TEXT NOT NULL DEFAULT '',
                    PRIMARY KEY (groupID, hash, transport));
                CREATE TABLE history (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, groupID BLOB NOT NULL, kind INTEGER NOT NULL,
                    sender BLOB, seq INTEGER, time INTEGER NOT NULL, receivedAt INTEGER NOT NULL,
                    text TEXT NOT NULL, event TEXT, subjects BLOB NOT NULL);
                CREATE INDEX historyByGroup ON history (groupID, id);
                CREATE TABLE evidence (
                    groupID BLOB NOT NULL, sender BLOB NOT NULL, seq INTEGER NOT NULL,
                    first BLOB NOT NULL, second BLOB NOT NULL, PRIMARY KEY (groupID, sender, seq));
                CREATE TABLE lock (
                    id INTEGER PRIMARY KEY CHECK (id = 1), salt BLOB NOT NULL, logN INTEGER NOT NULL,
                    r INTEGER NOT NULL, p INTEGER NOT NULL, sealedKey BLOB NOT NULL);
                CREATE TABLE peerVector (
                    peer BLOB NOT NULL, groupID BLOB NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (peer, groupID));
                """)
        }
        // Relays this device syncs with (NETWORK.md §13, `dcgka relay add`).
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                CREATE TABLE relay (
                    address TEXT PRIMARY KEY, relayID BLOB NOT NULL, addedAt INTEGER NOT NULL,
                    lastSync INTEGER, lastError TEXT);
                """)
        }
        // Several relays (NETWORK.md §14.1, §14.5): an outbox entry per relay, the groups a relay
        // carries, every member's relay list, device settings.
        migrator.registerMigration("v3") { db in
            try db.execute(sql: """
                ALTER TABLE relay ADD COLUMN groups BLOB NOT NULL DEFAULT x'';
                ALTER TABLE chatGroup ADD COLUMN relaysSetBy BLOB;
                CREATE TABLE relaySuggestion (
                    groupID BLOB NOT NULL, sender BLOB NOT NULL, sentAt INTEGER NOT NULL, relays BLOB NOT NULL,
                    PRIMARY KEY (groupID, sender));
                CREATE TABLE setting (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                INSERT OR IGNORE INTO outbox (groupID, hash, transport)
                    SELECT outbox.groupID, outbox.hash, lower(hex(relay.relayID)) FROM outbox, relay WHERE outbox.transport = '';
                DELETE FROM outbox WHERE transport = '' AND EXISTS (SELECT 1 FROM relay);
                """)
        }
        // Carrying groups for their members (NETWORK.md §14.3): grants, and the participants
        // of the groups carried.
        migrator.registerMigration("v4") { db in
            try db.execute(sql: """
                CREATE TABLE groupGrant (
                    groupID BLOB NOT NULL, holder BLOB NOT NULL, granter BLOB NOT NULL, notAfter INTEGER NOT NULL, wire BLOB NOT NULL,
                    PRIMARY KEY (groupID, holder, granter));
                CREATE TABLE carriedParticipant (groupID BLOB NOT NULL, member BLOB NOT NULL, PRIMARY KEY (groupID, member));
                """)
        }
        // The equivocation rule (PROTOCOL-NOTES.md, "Equivocation"): when a fork pair was first
        // kept, from which a member not named to remove the equivocator at once waits its delay.
        migrator.registerMigration("v5") { db in
            try db.execute(sql: "ALTER TABLE evidence ADD COLUMN savedAt INTEGER NOT NULL DEFAULT 0")
        }
        // Evidence whose equivocators are all out of the group's view (`settled`): sync passes
        // do not decode that group again. Rows from before start open; the next pass settles them.
        migrator.registerMigration("v6") { db in
            try db.execute(sql: "ALTER TABLE evidence ADD COLUMN settled INTEGER NOT NULL DEFAULT 0")
        }
        return migrator
    }

    public func read<T>(_ body: (any DeviceStoreTransaction) throws -> T) throws -> T {
        do {
            return try writer.read { db in try body(SQLiteTransaction(db: db, sealer: sealer)) }
        } catch {
            throw Self.translate(error, timeout: busyTimeout)
        }
    }

    /// One `BEGIN IMMEDIATE` transaction: the write lock is taken before anything is read, so
    /// two processes never both read a group's state and sign at its next seq.
    public func write<T>(_ body: (any DeviceStoreTransaction) throws -> T) throws -> T {
        do {
            return try writer.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(SQLiteTransaction(db: db, sealer: sealer))
                    return .commit
                }
                guard let result else { throw DeviceStoreError.sqlite("transaction returned nothing") }
                return result
            }
        } catch {
            throw Self.translate(error, timeout: busyTimeout)
        }
    }

    public func purgeDeletedData() throws {
        guard path != nil else { return }
        do {
            try writer.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        } catch {
            // A reader in another process can hold the log; the next write's checkpoint finishes it.
            if case let error as DatabaseError = error, error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED { return }
            throw Self.translate(error, timeout: busyTimeout)
        }
    }

    /// The database file's bytes and its WAL's, for tests that look for deleted secrets.
    public var filePaths: [String] {
        guard let path else { return [] }
        return [path, path + "-wal", path + "-shm"]
    }

    static func translate(_ error: any Error, timeout: Double, opening: Bool = false) -> any Error {
        if error is DeviceError || error is DeviceStoreError { return error }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED: return DeviceStoreError.locked(seconds: timeout)
            case .SQLITE_CORRUPT, .SQLITE_NOTADB: return DeviceStoreError.cannotOpen("not a dcgka database, or damaged")
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY: return DeviceStoreError.cannotOpen(error.message ?? "\(error.resultCode)")
            default: return opening ? DeviceStoreError.cannotOpen(error.message ?? "\(error)") : DeviceStoreError.sqlite(error.message ?? "\(error)")
            }
        }
        return error
    }
}

/// The records of one GRDB transaction.
struct SQLiteTransaction: DeviceStoreTransaction {
    let db: Database
    let sealer: ColumnSealer?

    /// A secret column's value as stored: sealed when the home is locked.
    func seal(_ bytes: [UInt8], _ context: String) -> Data {
        guard let sealer else { return Data(bytes) }
        return Data(sealer.seal(bytes, context: context))
    }

    /// A text column: plain, or sealed (as a BLOB) when the home is locked.
    func sealText(_ text: String, _ context: String) -> DatabaseValue {
        sealer == nil ? text.databaseValue : seal(Array(text.utf8), context).databaseValue
    }

    func openText(_ row: Row, _ column: String, _ context: String) throws -> String {
        guard sealer != nil else { return row[column] }
        return String(decoding: try open(row[column], context), as: UTF8.self)
    }

    func open(_ data: Data?, _ context: String) throws -> [UInt8] {
        guard let data else { return [] }
        guard let sealer else { return Array(data) }
        do { return try sealer.open(Array(data), context: context) } catch {
            throw DeviceStoreError.corrupt("a sealed \(context) does not open")
        }
    }

    func profile() throws -> ProfileRecord? {
        guard let row = try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM profile WHERE id = 1")) else { return nil }
        return ProfileRecord(
            name: row["name"], identity: try open(row["identity"], "identity"), prekeys: try open(row["prekeys"], "prekeys"),
            bundle: bytes(row["bundle"]),
            createdAt: UInt64(row["createdAt"] as Int64))
    }

    func saveProfile(_ profile: ProfileRecord) throws {
        try db.cachedStatement(sql: """
                INSERT INTO profile (id, name, identity, prekeys, bundle, createdAt) VALUES (1, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, identity = excluded.identity,
                    prekeys = excluded.prekeys, bundle = excluded.bundle, createdAt = excluded.createdAt
                """).execute(arguments: [
                profile.name, seal(profile.identity, "identity"), seal(profile.prekeys, "prekeys"), Data(profile.bundle),
                Int64(profile.createdAt),
            ])
    }

    func contacts() throws -> [ContactRecord] {
        try Row.fetchAll(try db.cachedStatement(sql: "SELECT * FROM contact")).map { row in
            ContactRecord(id: try memberID(row["id"]), name: try openText(row, "name", "contact name"), bundle: bytes(row["bundle"]), addedAt: UInt64(row["addedAt"] as Int64))
        }
    }

    func saveContact(_ contact: ContactRecord) throws {
        try db.cachedStatement(sql: """
                INSERT INTO contact (id, name, bundle, addedAt) VALUES (?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, bundle = excluded.bundle, addedAt = excluded.addedAt
                """).execute(arguments: [Data(contact.id.bytes), sealText(contact.name, "contact name"), Data(contact.bundle), Int64(contact.addedAt)])
    }

    func groups() throws -> [GroupRecord] {
        try Row.fetchAll(try db.cachedStatement(sql: "SELECT * FROM chatGroup")).map(groupRecord)
    }

    func group(_ id: GroupID) throws -> GroupRecord? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM chatGroup WHERE id = ?"), arguments: [Data(id.bytes)]).map(groupRecord)
    }

    func groupRecord(_ row: Row) throws -> GroupRecord {
        let relays = try openText(row, "relays", "group relays")
        var record = GroupRecord(
            id: GroupID(try bytes32(row["id"])), title: try openText(row, "title", "group title"),
            state: try (row["state"] as Data?).map { try open($0, "group state") },
            status: GroupRecord.Status(rawValue: row["status"]) ?? .invited,
            invitation: try (row["invitation"] as Data?).map(bytes32), invitedBy: try (row["invitedBy"] as Data?).map(memberID),
            relays: relays.split(separator: "\n").map(String.init).filter { !$0.isEmpty }, titleSetAt: UInt64(row["titleSetAt"] as Int64),
            titleSetBy: try (row["titleSetBy"] as Data?).map(memberID), relaysSetAt: UInt64(row["relaysSetAt"] as Int64),
            createdAt: UInt64(row["createdAt"] as Int64))
        record.disappearAfter = UInt64(row["disappearAfter"] as Int64)
        record.relaysSetBy = try (row["relaysSetBy"] as Data?).map(memberID)
        return record
    }

    func saveGroup(_ group: GroupRecord) throws {
        try db.cachedStatement(sql: """
                INSERT INTO chatGroup (id, title, state, status, invitation, invitedBy, relays, titleSetAt, titleSetBy, relaysSetAt,
                    disappearAfter, createdAt, relaysSetBy)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET title = excluded.title, state = excluded.state, status = excluded.status,
                    invitation = excluded.invitation, invitedBy = excluded.invitedBy, relays = excluded.relays,
                    titleSetAt = excluded.titleSetAt, titleSetBy = excluded.titleSetBy, relaysSetAt = excluded.relaysSetAt,
                    disappearAfter = excluded.disappearAfter, relaysSetBy = excluded.relaysSetBy
                """).execute(arguments: [
                Data(group.id.bytes), sealText(group.title, "group title"), group.state.map { seal($0, "group state") }, group.status.rawValue,
                group.invitation.map { Data($0.bytes) }, group.invitedBy.map { Data($0.bytes) }, sealText(group.relays.joined(separator: "\n"), "group relays"),
                Int64(group.titleSetAt), group.titleSetBy.map { Data($0.bytes) }, Int64(group.relaysSetAt),
                Int64(group.disappearAfter), Int64(group.createdAt), group.relaysSetBy.map { Data($0.bytes) },
            ])
    }

    func appendLog(_ entry: LogRecord) throws -> Int64 {
        try db.cachedStatement(
            sql: "INSERT INTO envelope (groupID, sender, seq, hash, kind, wire, receivedAt, pruned) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [
            Data(entry.group.bytes), Data(entry.sender.bytes), Int64(entry.seq), Data(entry.hash.bytes), Int(entry.kind),
            Data(entry.wire), Int64(entry.receivedAt), entry.isPruned,
        ])
        return db.lastInsertedRowID
    }

    func logRecord(_ row: Row) throws -> LogRecord {
        LogRecord(
            position: row["position"], group: GroupID(try bytes32(row["groupID"])), sender: try memberID(row["sender"]),
            seq: UInt64(row["seq"] as Int64), hash: try bytes32(row["hash"]), kind: UInt8(truncatingIfNeeded: row["kind"] as Int),
            wire: bytes(row["wire"]), receivedAt: UInt64(row["receivedAt"] as Int64), isPruned: row["pruned"])
    }

    func unprunedApplicationEntries(receivedBefore time: UInt64, limit: Int) throws -> [LogRecord] {
        try Row.fetchAll(
            try db.cachedStatement(sql: "SELECT * FROM envelope WHERE pruned = 0 AND kind = 0 AND receivedAt < ? LIMIT ?"),
            arguments: [Int64(min(time, UInt64(Int64.max))), limit]
        ).map(logRecord)
    }

    func replaceWire(position: Int64, wire: [UInt8], pruned: Bool) throws {
        try db.cachedStatement(sql: "UPDATE envelope SET wire = ?, pruned = ? WHERE position = ?").execute(arguments: [Data(wire), pruned, position])
    }

    func logEntry(group: GroupID, hash: Bytes32) throws -> LogRecord? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM envelope WHERE groupID = ? AND hash = ?"), arguments: [Data(group.bytes), Data(hash.bytes)])
            .map(logRecord)
    }

    func logContains(group: GroupID, hash: Bytes32) throws -> Bool {
        try Int.fetchOne(
            try db.cachedStatement(sql: "SELECT 1 FROM envelope WHERE groupID = ? AND hash = ?"), arguments: [Data(group.bytes), Data(hash.bytes)]
        ) != nil
    }

    func logHash(group: GroupID, sender: MemberID, seq: UInt64) throws -> (hash: Bytes32, pruned: Bool)? {
        guard let row = try Row.fetchOne(
            try db.cachedStatement(sql: "SELECT hash, pruned FROM envelope WHERE groupID = ? AND sender = ? AND seq = ? ORDER BY position LIMIT 1"),
            arguments: [Data(group.bytes), Data(sender.bytes), Int64(seq)]) else { return nil }
        return (try bytes32(row["hash"]), row["pruned"])
    }

    func logEntry(group: GroupID, sender: MemberID, seq: UInt64) throws -> LogRecord? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM envelope WHERE groupID = ? AND sender = ? AND seq = ? ORDER BY position LIMIT 1"),
            arguments: [Data(group.bytes), Data(sender.bytes), Int64(seq)]
        ).map(logRecord)
    }

    func log(group: GroupID, after position: Int64, limit: Int) throws -> [LogRecord] {
        try Row.fetchAll(try db.cachedStatement(sql: "SELECT * FROM envelope WHERE groupID = ? AND position > ? ORDER BY position LIMIT ?"),
            arguments: [Data(group.bytes), position, Int64(min(limit, Int(Int64.max)))]
        ).map(logRecord)
    }

    func logIndex(group: GroupID) throws -> [(sender: MemberID, seq: UInt64, hash: Bytes32)] {
        try Row.fetchAll(try db.cachedStatement(sql: "SELECT sender, seq, hash FROM envelope WHERE groupID = ?"), arguments: [Data(group.bytes)]).map { row in
            (try memberID(row["sender"]), UInt64(row["seq"] as Int64), try bytes32(row["hash"]))
        }
    }

    func logCount(group: GroupID) throws -> Int {
        try Int.fetchOne(try db.cachedStatement(sql: "SELECT COUNT(*) FROM envelope WHERE groupID = ?"), arguments: [Data(group.bytes)]) ?? 0
    }

    func lastLogPosition(group: GroupID) throws -> Int64 {
        try Int64.fetchOne(try db.cachedStatement(sql: "SELECT MAX(position) FROM envelope WHERE groupID = ?"), arguments: [Data(group.bytes)]) ?? 0
    }

    /// An outbox entry's transport: a relay's ID in lowercase hex, or '' while no relay is known.
    static func transport(_ relay: MemberID) -> String { relay.raw.hex.lowercased() }

    func addToOutbox(group: GroupID, hash: Bytes32) throws {
        try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO outbox (groupID, hash, transport) SELECT ?, ?, lower(hex(relayID)) FROM relay
            """).execute(arguments: [Data(group.bytes), Data(hash.bytes)])
        if db.changesCount == 0, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM relay") == 0 {
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO outbox (groupID, hash, transport) VALUES (?, ?, '')")
                .execute(arguments: [Data(group.bytes), Data(hash.bytes)])
        }
    }

    func outboxCount(relay: MemberID?) throws -> Int {
        if let relay {
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE transport = ?", arguments: [Self.transport(relay)]) ?? 0
        }
        return try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT hash) FROM outbox") ?? 0
    }

    func removeFromOutbox(group: GroupID, hashes: [Bytes32], relay: MemberID) throws -> Int {
        let statement = try db.cachedStatement(sql: "DELETE FROM outbox WHERE groupID = ? AND hash = ? AND transport = ?")
        let transport = Self.transport(relay)
        var removed = 0
        for hash in hashes {
            try statement.execute(arguments: [Data(group.bytes), Data(hash.bytes), transport])
            removed += db.changesCount
        }
        return removed
    }

    func relays() throws -> [RelayRecord] {
        try Row.fetchAll(db, sql: "SELECT address, relayID, addedAt, lastSync, lastError, groups FROM relay ORDER BY address").map { row in
            let groups = row["groups"] as Data? ?? Data()
            return RelayRecord(
                address: row["address"], relay: try memberID(row["relayID"]), addedAt: UInt64(row["addedAt"] as Int64),
                lastSync: (row["lastSync"] as Int64?).map { UInt64($0) }, lastError: row["lastError"],
                groups: try stride(from: 0, to: groups.count, by: 32).map { offset in
                    GroupID(try bytes32(Data(groups[groups.startIndex + offset ..< min(groups.endIndex, groups.startIndex + offset + 32)])))
                })
        }
    }

    func saveRelay(_ relay: RelayRecord) throws {
        let isNewRelay = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM relay WHERE relayID = ?", arguments: [Data(relay.relay.bytes)]) == 0
        try db.execute(sql: """
            INSERT INTO relay (address, relayID, addedAt, lastSync, lastError, groups) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (address) DO UPDATE SET lastSync = excluded.lastSync, lastError = excluded.lastError, groups = excluded.groups
            """, arguments: [relay.address, Data(relay.relay.bytes), Int64(relay.addedAt), relay.lastSync.map { Int64($0) }, relay.lastError,
                             Data(relay.groups.flatMap(\.bytes))])
        if isNewRelay {
            // A relay new here owes a confirmation of everything still waiting (what the relays
            // I had have not all stored yet, or what waited for a first relay).
            try db.execute(sql: "INSERT OR IGNORE INTO outbox (groupID, hash, transport) SELECT DISTINCT groupID, hash, ? FROM outbox",
                           arguments: [Self.transport(relay.relay)])
            try db.execute(sql: "DELETE FROM outbox WHERE transport = ''")
        }
    }

    func deleteRelay(address: String) throws -> Bool {
        guard let relayID = try Data.fetchOne(db, sql: "SELECT relayID FROM relay WHERE address = ?", arguments: [address]) else { return false }
        try db.execute(sql: "DELETE FROM relay WHERE address = ?", arguments: [address])
        guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM relay WHERE relayID = ?", arguments: [relayID]) == 0 else { return true }
        let transport = Self.transport(try memberID(relayID))
        if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM relay") == 0 {
            // The last relay: what it had not confirmed waits for the next one.
            try db.execute(sql: "INSERT OR IGNORE INTO outbox (groupID, hash, transport) SELECT groupID, hash, '' FROM outbox WHERE transport = ?",
                           arguments: [transport])
        }
        try db.execute(sql: "DELETE FROM outbox WHERE transport = ?", arguments: [transport])
        return true
    }

    func relaySuggestions(group: GroupID) throws -> [RelaySuggestion] {
        try Row.fetchAll(db, sql: "SELECT sender, sentAt, relays FROM relaySuggestion WHERE groupID = ?", arguments: [Data(group.bytes)]).map { row in
            let text = String(decoding: try open(row["relays"], "relay suggestion"), as: UTF8.self)
            return RelaySuggestion(
                group: group, sender: try memberID(row["sender"]), sentAt: UInt64(row["sentAt"] as Int64),
                relays: text.split(separator: "\n").map(String.init))
        }
    }

    func saveRelaySuggestion(_ suggestion: RelaySuggestion) throws {
        try db.execute(sql: """
            INSERT INTO relaySuggestion (groupID, sender, sentAt, relays) VALUES (?, ?, ?, ?)
            ON CONFLICT (groupID, sender) DO UPDATE SET sentAt = excluded.sentAt, relays = excluded.relays
            """, arguments: [Data(suggestion.group.bytes), Data(suggestion.sender.bytes), Int64(suggestion.sentAt),
                             seal(Array(suggestion.relays.joined(separator: "\n").utf8), "relay suggestion")])
    }

    func grants(group: GroupID) throws -> [[UInt8]] {
        try Data.fetchAll(db, sql: "SELECT wire FROM groupGrant WHERE groupID = ?", arguments: [Data(group.bytes)]).map { Array($0) }
    }

    func saveGrant(group: GroupID, holder: MemberID, granter: MemberID, notAfter: UInt64, wire: [UInt8]) throws {
        try db.execute(sql: """
            INSERT INTO groupGrant (groupID, holder, granter, notAfter, wire) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (groupID, holder, granter) DO UPDATE SET notAfter = excluded.notAfter, wire = excluded.wire
            WHERE excluded.notAfter > groupGrant.notAfter
            """, arguments: [Data(group.bytes), Data(holder.bytes), Data(granter.bytes), Int64(notAfter), Data(wire)])
    }

    func participants(group: GroupID) throws -> Set<MemberID> {
        Set(try Data.fetchAll(db, sql: "SELECT member FROM carriedParticipant WHERE groupID = ?", arguments: [Data(group.bytes)]).map(memberID))
    }

    func addParticipants(group: GroupID, _ members: [MemberID]) throws {
        for member in members {
            try db.execute(sql: "INSERT OR IGNORE INTO carriedParticipant (groupID, member) VALUES (?, ?)", arguments: [Data(group.bytes), Data(member.bytes)])
        }
    }

    func changeMarks() throws -> [Int64] {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT (SELECT IFNULL(MAX(position), 0) FROM envelope), (SELECT IFNULL(MAX(id), 0) FROM history),
                   (SELECT COUNT(*) FROM history), (SELECT COUNT(*) FROM chatGroup), (SELECT IFNULL(SUM(status), 0) FROM chatGroup),
                   (SELECT COUNT(*) FROM contact), (SELECT COUNT(*) FROM relay), (SELECT IFNULL(SUM(lastSync), 0) FROM relay),
                   (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM relaySuggestion),
                   (SELECT IFNULL(SUM(CAST(value AS INTEGER)), 0) FROM setting WHERE key LIKE 'read-mark.%'),
                   (SELECT COUNT(*) FROM setting)
            """)) else { return [] }
        return (0..<row.count).map { row[$0] as Int64? ?? 0 }
    }

    func setting(_ key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = ?", arguments: [key])
    }

    func setSetting(_ key: String, _ value: String) throws {
        try db.execute(sql: "INSERT INTO setting (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       arguments: [key, value])
    }

    func appendHistory(_ entry: HistoryRecord) throws -> Int64 {
        try db.cachedStatement(sql: "INSERT INTO history (groupID, kind, sender, seq, time, receivedAt, text, event, subjects) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)").execute(arguments: [
                Data(entry.group.bytes), entry.kind.rawValue, entry.sender.map { Data($0.bytes) }, entry.seq.map { Int64($0) },
                Int64(entry.time), Int64(entry.receivedAt), sealText(entry.text, "history"),
                entry.event, Data(entry.subjects.flatMap(\.bytes)),
            ])
        return db.lastInsertedRowID
    }

    func history(group: GroupID, after id: Int64, limit: Int) throws -> [HistoryRecord] {
        try Row.fetchAll(try db.cachedStatement(sql: "SELECT * FROM history WHERE groupID = ? AND id > ? ORDER BY id LIMIT ?"),
            arguments: [Data(group.bytes), id, Int64(min(limit, Int(Int64.max)))]
        ).map { row in
            let subjects = bytes(row["subjects"])
            return HistoryRecord(
                id: row["id"], group: group, kind: HistoryRecord.Kind(rawValue: row["kind"]) ?? .event,
                sender: try (row["sender"] as Data?).map(memberID), seq: (row["seq"] as Int64?).map { UInt64($0) },
                time: UInt64(row["time"] as Int64), receivedAt: UInt64(row["receivedAt"] as Int64),
                text: try openText(row, "text", "history"),
                event: row["event"],
                subjects: stride(from: 0, to: subjects.count - subjects.count % 32, by: 32).compactMap {
                    MemberID(bytes: Array(subjects[$0..<($0 + 32)]))
                })
        }
    }

    func historyActivity(group: GroupID, after id: Int64, me: MemberID) throws -> (unread: Int, lastTime: UInt64?, lastID: Int64) {
        let unread = try Int.fetchOne(db.cachedStatement(sql: """
            SELECT COUNT(*) FROM history WHERE groupID = ? AND id > ? AND kind = ? AND (sender IS NULL OR sender != ?)
            """), arguments: [Data(group.bytes), id, HistoryRecord.Kind.message.rawValue, Data(me.bytes)]) ?? 0
        let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, time FROM history WHERE groupID = ? ORDER BY id DESC LIMIT 1"),
                                    arguments: [Data(group.bytes)])
        return (unread, last.map { UInt64($0["time"] as Int64) }, last?["id"] ?? 0)
    }

    /// One statement, no group state read: the timers are a column of `chatGroup`.
    func deleteDisappearedHistory(now: UInt64) throws -> Int {
        try db.cachedStatement(sql: """
            DELETE FROM history WHERE EXISTS (
                SELECT 1 FROM chatGroup g WHERE g.id = history.groupID AND g.disappearAfter > 0
                    AND history.receivedAt + g.disappearAfter < ?)
            """).execute(arguments: [Int64(min(now, UInt64(Int64.max / 2)))])
        return db.changesCount
    }

    func saveEvidence(group: GroupID, sender: MemberID, seq: UInt64, first: [UInt8], second: [UInt8], savedAt: UInt64) throws {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO evidence (groupID, sender, seq, first, second, savedAt) VALUES (?, ?, ?, ?, ?, ?)").execute(arguments: [Data(group.bytes), Data(sender.bytes), Int64(seq), Data(first), Data(second), Int64(min(savedAt, UInt64(Int64.max)))])
    }

    func evidenceSavedAt(group: GroupID, sender: MemberID) throws -> UInt64? {
        try Int64.fetchOne(
            try db.cachedStatement(sql: "SELECT MIN(savedAt) FROM evidence WHERE groupID = ? AND sender = ?"), arguments: [Data(group.bytes), Data(sender.bytes)]
        ).map { UInt64(max(0, $0)) }
    }

    func groupsWithOpenEvidence() throws -> [GroupID] {
        try Data.fetchAll(try db.cachedStatement(sql: "SELECT DISTINCT groupID FROM evidence WHERE settled = 0 ORDER BY groupID"))
            .map { GroupID(try bytes32($0)) }
    }

    func setEvidenceSettled(group: GroupID, _ settled: Bool) throws {
        try db.cachedStatement(sql: "UPDATE evidence SET settled = ? WHERE groupID = ? AND settled != ?")
            .execute(arguments: [settled ? 1 : 0, Data(group.bytes), settled ? 1 : 0])
    }

    func evidenceCount(group: GroupID) throws -> Int {
        try Int.fetchOne(try db.cachedStatement(sql: "SELECT COUNT(*) FROM evidence WHERE groupID = ?"), arguments: [Data(group.bytes)]) ?? 0
    }

    func evidence(group: GroupID) throws -> [(first: [UInt8], second: [UInt8])] {
        try Row.fetchAll(
            try db.cachedStatement(sql: "SELECT first, second FROM evidence WHERE groupID = ? ORDER BY sender, seq"), arguments: [Data(group.bytes)]
        ).map { (bytes($0["first"]), bytes($0["second"])) }
    }

    func peerVector(peer: MemberID, group: GroupID) throws -> [UInt8]? {
        try (Data.fetchOne(try db.cachedStatement(sql: "SELECT vector FROM peerVector WHERE peer = ? AND groupID = ?"), arguments: [Data(peer.bytes), Data(group.bytes)]))
            .map { Array($0) }
    }

    func savePeerVector(peer: MemberID, group: GroupID, vector: [UInt8]) throws {
        try db.cachedStatement(sql: "INSERT INTO peerVector (peer, groupID, vector) VALUES (?, ?, ?) ON CONFLICT (peer, groupID) DO UPDATE SET vector = excluded.vector").execute(arguments: [Data(peer.bytes), Data(group.bytes), Data(vector)])
    }

    // MARK: Columns

    func bytes(_ data: Data?) -> [UInt8] { data.map { Array($0) } ?? [] }

    func bytes32(_ data: Data) throws -> Bytes32 {
        guard let value = Bytes32(data) else { throw DeviceStoreError.corrupt("a 32-byte column holds \(data.count) bytes") }
        return value
    }

    func memberID(_ data: Data) throws -> MemberID { MemberID(try bytes32(data)) }
}

/// ChaCha20-Poly1305 for the secret columns of a locked home: `nonce (12) ‖ ciphertext ‖ tag`,
/// a fresh random nonce per write, the column's name as associated data (a value cannot be
/// moved to another column).
struct ColumnSealer: Sendable {
    let key: SymmetricKey

    init(key: [UInt8]) { self.key = SymmetricKey(data: key) }
    init(symmetric: SymmetricKey) { self.key = symmetric }

    static func derive(_ passphrase: String, salt: [UInt8], logN: Int, r: Int, p: Int) throws -> ColumnSealer {
        guard logN >= 10, logN <= 20, r >= 1, r <= 16, p >= 1, p <= 4, 128 * r << logN <= 256 << 20 else {
            throw DeviceStoreError.corrupt("the lock's scrypt cost is out of bounds")
        }
        let key = try KDF.Scrypt.deriveKey(
            from: Array(passphrase.utf8), salt: salt, outputByteCount: 32, rounds: 1 << logN, blockSize: r, parallelism: p)
        return ColumnSealer(symmetric: key)
    }

    func seal(_ bytes: [UInt8], context: String) -> [UInt8] {
        // Sealing with a 32-byte key and a fresh nonce cannot fail.
        guard let box = try? ChaChaPoly.seal(bytes, using: key, authenticating: Array(context.utf8)) else { return [] }
        return Array(box.combined)
    }

    func open(_ bytes: [UInt8], context: String) throws -> [UInt8] {
        let box = try ChaChaPoly.SealedBox(combined: bytes)
        return Array(try ChaChaPoly.open(box, using: key, authenticating: Array(context.utf8)))
    }
}
