public import Device
public import Sync
public import DCGKAEncoding
public import LinkIO
internal import Synchronization
internal import CausalBroadcast

/// The device's side of one link, whatever carries it (NETWORK.md §11): one pass, or a followed
/// link. The same for a relay and for a direct peer; only a relay of mine clears its outbox with
/// its acknowledgments (§14.1).
struct LinkPass<Random: RandomNumberGenerator & Sendable> {
    var device: Device<Random>
    let me: MemberID
    var report: SyncReport
    let cursor: LinkCursor
    /// The peer, when it is one of my relays (its `ack` and `have` clear its outbox entries).
    let relay: MemberID?

    init(device: Device<Random>, me: MemberID, peer: MemberID, report: SyncReport) throws {
        self.device = device
        self.me = me
        self.report = report
        relay = try device.relays().contains { $0.relay == peer } ? peer : nil
        cursor = LinkCursor(peer: peer, isRelay: relay != nil)
    }

    /// Runs the §11 exchange. Quiet means a `ping` came back with nothing in between; then what
    /// my log gained meanwhile (my acknowledgments of what arrived, say) is pushed, and a pass
    /// ends once that, too, is quiet. Following, it subscribes and keeps pushing.
    mutating func run<Channel: SyncChannel>(_ channel: inout Channel, follow: (@Sendable (SyncReport) -> Void)?) async throws {
        // A remove of an equivocator whose delay passed while nothing arrived goes out with this pass.
        try device.performEquivocationDuty()
        try cursor.start(device)
        let wanted = try cursor.sharedGroups(device)
        var session = SyncSession(me: me, wanted: wanted)
        var ping: UInt64 = 1
        var activity = 0
        // The directory (§13.3), at my relays: my newest bundle for those who need it, my
        // contacts' newest for me. A direct peer keeps no directory.
        let directory: [SyncMessage] = relay == nil ? [] : [.bundles([try device.profile().bundle.wireBytes]),
                                                            .bundleRequest(try device.contacts().map(\.id))]
        // Grants first (§11.2): a peer that may carry a group of mine, or that takes part in a
        // group I carry, learns it before its `have` is answered.
        let grants: [SyncMessage] = try device.grants(presentedTo: cursor.peer).map { .grant($0) }
        try await channel.link.send(
            session.start().compactMap { if case .send(let m) = $0 { m } else { nil } } + grants + directory
                + (try cursor.evidence(device, groups: wanted)) + [.ping(ping)])
        var pusher: Task<Void, any Error>?
        defer { pusher?.cancel() }
        while true {
            guard let messages = try await channel.receive() else {
                throw RelayClientError.link("the peer closed the link")
            }
            for message in messages {
                if case .pong(let nonce) = message {
                    guard nonce == ping, pusher == nil else { continue }
                    if activity == 0 {
                        let fresh = try cursor.fresh(device)
                        if fresh.isEmpty {
                            guard let follow else { return }
                            pusher = try await startFollowing(channel.link, session: session, follow: follow)
                            continue
                        }
                        report.sent += fresh.reduce(0) { if case .push(_, let wires) = $1 { $0 + wires.count } else { $0 } }
                        try await channel.link.send(fresh)
                    }
                    activity = 0
                    ping += 1
                    try await channel.link.send([.ping(ping)])
                    continue
                }
                // A peer's own quiet check (a direct peer runs this same pass) is answered and is
                // not activity: counting it, two peers would keep each other from ever being quiet.
                if case .ping(let nonce) = message {
                    try await channel.link.send([.pong(nonce)])
                    continue
                }
                activity += 1
                if case .have(let group, let vector) = message, let head = vector.heads[me] { try confirmHeld(group, upTo: head) }
                let outputs = try await session.receive(message, holder: device)
                activity += try await handle(outputs, session: &session, link: channel.link)
                if let follow, pusher != nil { follow(report) }
            }
        }
    }

    /// The relay's `have` is what it stored durably: my envelopes of the group up to its head for
    /// me (the same chain: the hash at that seq is mine) are confirmed, like an `ack`, so that an
    /// outbox entry whose `ack` was lost (a relay stopped between its commit and its `ack`) is
    /// cleared too (NETWORK.md §10.2). Only while something waits in the outbox.
    mutating func confirmHeld(_ group: GroupID, upTo head: Frontier.Head) throws {
        guard let relay, try device.outboxCount(relay: relay) > 0,
              let chain = try device.holdings(of: group).chains[me], chain[head.seq] == head.hash else { return }
        report.acknowledged += try device.acknowledged(group, chain.filter { $0.key <= head.seq }.map(\.value), by: relay)
    }

    /// Handles the session's outputs; returns how many messages were sent.
    mutating func handle(_ outputs: [SyncSession.Output], session: inout SyncSession, link: some SyncLink) async throws -> Int {
        var pending = outputs
        var sent = 0
        while !pending.isEmpty {
            switch pending.removeFirst() {
            case .send(let message):
                // Only a relay's `ack` clears anything (my outbox for it); a device's clears
                // nothing at a relay or at another device, so a device sends none.
                if case .ack = message { continue }
                if case .envelopes(_, let wires) = message { report.sent += wires.count }
                try await link.send([message])
                sent += 1
            case .deliver(let group, let wires):
                report.received += wires.count
                let hashes = wires.compactMap { try? Envelope(wire: $0, groupID: group).hash }
                cursor.arrived(hashes)
                let result = try device.receive(wires.map { ReceivedEnvelope(group: group, wire: $0) })
                report.new += result.new
                if result.new > 0 { LogActivity.shared.changed() }
                report.joined += result.joined.count
                report.invitations += result.invitations.count
                report.messages += result.messages
                pending += try await session.committed(group, hashes: try device.held(group, hashes), holder: device)
            case .acknowledged(let group, let hashes):
                report.acknowledged += hashes.count
                if let relay { try device.acknowledged(group, hashes, by: relay) }
                // A relay ignores a subscription to a group it does not hold yet (it cannot tell
                // whether I may read it); once it stored the group's envelopes, subscribe again.
                if relay != nil, cursor.takeSubscriptionToRetry(group) {
                    try await link.send([.subscribe(group)])
                    sent += 1
                }
            case .invited(let groups):
                report.invited += groups.count
                cursor.requested(groups)
                pending += try await session.request(groups, holder: device)
            case .closed(let code, let text):
                throw RelayClientError.refused(code, text)
            case .bundles(let bundles):
                report.bundlesRefreshed += try device.refreshContacts(bundles)
            case .granted(let grant):
                if try device.acceptGrant(grant, from: cursor.peer) { cursor.reconsider(grant.group) }
            case .prunedAtPeer, .subscribed, .pong, .bundlesRequested:
                break
            }
        }
        return sent
    }

    /// After the first quiet point: subscribe to every group, then push my log's growth: at once
    /// when this process stored something (``LogActivity``), and every quarter second for what
    /// other processes on the home wrote.
    func startFollowing(
        _ link: some SyncLink, session: SyncSession, follow: @escaping @Sendable (SyncReport) -> Void
    ) async throws -> Task<Void, any Error> {
        let groups = try cursor.sharedGroups(device)
        try await link.send(groups.map { .subscribe($0) })
        follow(report)
        let device = device
        let cursor = cursor
        return Task {
            var pings: UInt64 = 0
            var lastPing = ContinuousClock.now
            while !Task.isCancelled {
                // At once when this process's log grew, else every quarter second.
                await LogActivity.shared.wait(upTo: .milliseconds(250))
                try Task.checkCancellation()
                var fresh = try cursor.fresh(device)
                // A keep-alive well within the relay's idle limit (its answer is ignored).
                if lastPing.duration(to: .now) > .seconds(60) {
                    pings += 1
                    lastPing = .now
                    fresh.append(.ping(UInt64.max - pings))
                }
                if !fresh.isEmpty { try await link.send(fresh) }
            }
        }
    }
}

/// What a link has seen of the device's logs: hashes that arrived over it (never pushed back)
/// and, per group, the log position up to which everything newer was given to the peer.
final class LinkCursor: Sendable {
    private struct State {
        var arrived: Set<Bytes32> = []
        var positions: [GroupID: Int64] = [:]
        /// Groups this link asked for after the peer's `invited` (their `have` already went out).
        var requested: Set<GroupID> = []
        /// Groups the peer may not have (§11.2), and the log end at which that was judged: an
        /// add of the peer later in the log makes it a participant.
        var unshared: [GroupID: Int64] = [:]
        /// How many fork pairs of each group this link passed on.
        var evidenceSent: [GroupID: Int] = [:]
        /// Groups new on this home that were announced to a relay with a `subscribe` it may have
        /// ignored (it did not hold them yet): subscribed again at its first `ack` of them.
        var subscriptionsToRetry: Set<GroupID> = []
    }
    private let state = Mutex(State())
    /// The holder at the other end: only groups it may have are pushed to it.
    let peer: MemberID
    /// A relay of mine learns of new groups by their `have` alone.
    let peerIsRelay: Bool

    init(peer: MemberID, isRelay: Bool) {
        self.peer = peer
        peerIsRelay = isRelay
    }

    /// My joined groups the peer may have. A participant stays one (§11.2), so only groups judged
    /// unshared are judged again, and only when their log grew.
    func sharedGroups<R>(_ device: Device<R>) throws -> [GroupID] {
        var shared: [GroupID] = []
        for group in try device.heldGroupIDs() {
            let (known, judgedAt) = state.withLock { ($0.positions[group] != nil || $0.requested.contains(group), $0.unshared[group]) }
            if known { shared.append(group); continue }
            let last = try device.lastLogPosition(of: group)
            if let judgedAt, judgedAt == last { continue }
            if try device.shares(group, with: peer) {
                state.withLock { _ = $0.unshared.removeValue(forKey: group) }
                shared.append(group)
            } else {
                state.withLock { $0.unshared[group] = last }
            }
        }
        return shared
    }

    func arrived(_ hashes: [Bytes32]) { state.withLock { $0.arrived.formUnion(hashes) } }

    /// The link asked the peer for these groups (invitations): if one is joined over it, what my
    /// log gains besides what arrived (my acknowledgments of the welcome) is pushed.
    func requested(_ groups: [GroupID]) { state.withLock { $0.requested.formUnion(groups) } }

    /// True once for a group whose subscription must be sent again (see `subscriptionsToRetry`).
    func takeSubscriptionToRetry(_ group: GroupID) -> Bool {
        state.withLock { $0.subscriptionsToRetry.remove(group) != nil }
    }

    /// Starts every group I am in at its current log end: what is older travels by `have`.
    func start<R>(_ device: Device<R>) throws {
        for group in try sharedGroups(device) {
            let last = try device.lastLogPosition(of: group)
            state.withLock { $0.positions[group] = last }
        }
    }

    /// A grant changed who may have `group`: judge it again.
    func reconsider(_ group: GroupID) { state.withLock { _ = $0.unshared.removeValue(forKey: group) } }

    /// Fork evidence I hold that this link has not passed on yet (PROTOCOL.md §6.2: kept and
    /// passed on, so that an equivocation shown on one path is reported on every other).
    func evidence<R>(_ device: Device<R>, groups: [GroupID]) throws -> [SyncMessage] {
        var messages: [SyncMessage] = []
        for group in groups {
            let count = try device.evidenceCount(of: group)
            guard count > state.withLock({ $0.evidenceSent[group] ?? 0 }) else { continue }
            messages += try device.evidence(of: group).map { .evidence(group, $0.first, $0.second) }
            state.withLock { $0.evidenceSent[group] = count }
        }
        return messages
    }

    /// The envelopes my log gained since the cursor (mine, or from another link), as `push`
    /// messages for the peer; groups new on the home are announced with `have` instead.
    func fresh<R>(_ device: Device<R>) throws -> [SyncMessage] {
        var messages: [SyncMessage] = []
        let shared = try sharedGroups(device)
        for group in shared {
            let (known, requested) = state.withLock { ($0.positions[group], $0.requested.contains(group)) }
            var after: Int64
            if let known {
                after = known
            } else if requested {
                // Joined over this link: the peer already answered my `have` with what it holds
                // (all of it marked as arrived); my log's own additions (the acknowledgment of the
                // welcome) are pushed from the log's start, and I subscribe for what follows.
                after = 0
                messages.append(.subscribe(group))
            } else {
                // A group new on this home (created, or joined by another link): the peer gets it
                // by answering my `have`, and I subscribe for what follows.
                // A device peer may not know the group yet (it was added on another side of the
                // mesh): it is told, as a `hello` answer would (§11.1), and asks with its `have`.
                let last = try device.lastLogPosition(of: group)
                state.withLock { state in
                    state.positions[group] = last
                    if peerIsRelay { state.subscriptionsToRetry.insert(group) }
                }
                if !peerIsRelay { messages.append(.invited([group])) }
                messages += [.have(group, try device.holdings(of: group).vector()), .subscribe(group)]
                continue
            }
            while true {
                let (wires, last) = try device.log(of: group, after: after)
                guard !wires.isEmpty else { break }
                after = last
                let new = state.withLock { state in
                    wires.filter { wire in
                        guard let hash = try? Envelope(wire: wire, groupID: group).hash else { return false }
                        return !state.arrived.contains(hash)
                    }
                }
                if !new.isEmpty { messages.append(.push(group, new)) }
            }
            state.withLock { $0.positions[group] = after }
        }
        return messages + (try evidence(device, groups: shared))
    }
}

