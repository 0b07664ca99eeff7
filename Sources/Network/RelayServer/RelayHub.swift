public import DCGKAEncoding
internal import Sync

/// Live delivery inside one relay process (NETWORK.md §11.1 `subscribe`/`push`): which links
/// subscribed to which groups. A newly stored envelope is pushed to every other subscribed link;
/// with PostgreSQL, envelopes other processes stored arrive here through `LISTEN/NOTIFY`.
actor RelayHub {
    private var subscribers: [GroupID: [Int: Outbox]] = [:]
    private var groupsOf: [Int: Set<GroupID>] = [:]

    func subscribe(_ group: GroupID, connection: Int, outbox: Outbox) {
        subscribers[group, default: [:]][connection] = outbox
        groupsOf[connection, default: []].insert(group)
    }

    func remove(connection: Int) {
        for group in groupsOf.removeValue(forKey: connection) ?? [] {
            subscribers[group]?[connection] = nil
            if subscribers[group]?.isEmpty == true { subscribers[group] = nil }
        }
    }

    /// Pushes to every subscriber but the link the envelopes came from; returns how many links.
    @discardableResult
    func publish(_ group: GroupID, _ wires: [[UInt8]], except origin: Int?) -> Int {
        guard let links = subscribers[group] else { return 0 }
        var count = 0
        for (connection, outbox) in links where connection != origin {
            outbox.enqueue(.push(group, wires))
            count += 1
        }
        return count
    }
}
