public import DCGKAEncoding
internal import Sync
internal import CausalBroadcast
internal import Relay

/// Live delivery inside one relay process (NETWORK.md §11.1 `subscribe`/`push`): which links
/// subscribed to which groups. A newly stored envelope is pushed to every other subscribed link;
/// with PostgreSQL, envelopes other processes stored arrive here through `LISTEN/NOTIFY`.
actor RelayHub {
    private var subscribers: [GroupID: [Int: Outbox]] = [:]
    private var groupsOf: [Int: Set<GroupID>] = [:]
    /// Each live link's authenticated identity, to tell it of groups it was just invited to.
    private var links: [Int: (peer: MemberID, outbox: Outbox)] = [:]
    /// Groups each link was told of with `invited` (once per link and group).
    private var told: [Int: Set<GroupID>] = [:]

    func register(_ connection: Int, peer: MemberID, outbox: Outbox) {
        links[connection] = (peer, outbox)
    }

    func subscribe(_ group: GroupID, connection: Int, outbox: Outbox) {
        subscribers[group, default: [:]][connection] = outbox
        groupsOf[connection, default: []].insert(group)
    }

    func remove(connection: Int) {
        links[connection] = nil
        told[connection] = nil
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

    /// A create or an add was stored: every live link of a participant that has not subscribed
    /// to the group hears `invited` (NETWORK.md §11.1's answer to `hello`, given live), so a
    /// device that stays connected learns of a group it was added to at once, not at its next
    /// pass.
    func invite(_ group: GroupID, participants: Set<MemberID>, except origin: Int?) {
        for (connection, link) in links where connection != origin && participants.contains(link.peer) {
            guard groupsOf[connection]?.contains(group) != true, told[connection]?.contains(group) != true else { continue }
            told[connection, default: []].insert(group)
            link.outbox.enqueue(.invited([group]))
        }
    }

    /// Envelopes another relay process stored (PostgreSQL's `LISTEN/NOTIFY`): pushed to the
    /// group's subscribers, and, when they add participants, announced to those participants'
    /// live links (a link's own admission says whom its envelopes name; these are decoded).
    func stored(_ group: GroupID, _ wires: [[UInt8]], except origin: Int?, store: any RelayStore) async {
        publish(group, wires, except: origin)
        let adds = wires.contains { wire in
            guard let kind = try? Envelope(wire: wire, groupID: group).kind else { return false }
            return kind == .create || kind == .add
        }
        guard adds, !links.isEmpty, let participants = try? await store.participants(of: group) else { return }
        invite(group, participants: participants, except: origin)
    }
}
