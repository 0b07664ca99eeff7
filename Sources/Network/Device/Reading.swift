public import DCGKAEncoding

// MARK: - What the user has read (a client's unread counts)

extension Device {
    static func readMarkKey(_ group: GroupID) -> String { "read-mark." + group.raw.hex }

    /// The newest history line of a group the user has seen (0: none).
    public func readMark(of group: GroupID) throws -> Int64 {
        try store.read { tx in Int64(try tx.setting(Self.readMarkKey(group)) ?? "") ?? 0 }
    }

    /// Records that the user has seen a group's history up to line `id`; a mark never moves
    /// back, so two windows showing one group cannot make read lines unread again.
    public func markRead(_ group: GroupID, upTo id: Int64) throws {
        try store.write { tx in
            let key = Self.readMarkKey(group)
            guard id > Int64(try tx.setting(key) ?? "") ?? 0 else { return }
            try tx.setSetting(key, String(id))
        }
    }

    /// A group's unread messages (from others than `me`, after the read mark), and its newest
    /// line.
    public func activity(of group: GroupID, me: MemberID) throws -> (unread: Int, lastTime: UInt64?, lastID: Int64) {
        try store.read { tx in
            let mark = Int64(try tx.setting(Self.readMarkKey(group)) ?? "") ?? 0
            return try tx.historyActivity(group: group, after: mark, me: me)
        }
    }
}

extension Device {
    /// Changes whenever anything a client shows changes, whichever process on the home wrote it
    /// (``DeviceStoreTransaction/changeMarks()``).
    public func changeMarks() throws -> [Int64] {
        try store.read { try $0.changeMarks() }
    }
}
