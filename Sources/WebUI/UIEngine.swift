internal import DCGKAEncoding
internal import DCGKACrypto
internal import Device
internal import Foundation
internal import Logging
internal import RelayClient
internal import Sync

/// The page's requests, carried out on the device engine the CLI uses (docs/UI-API.md): one
/// actor, so the page's operations on this device happen one at a time, each in the device's
/// own transaction.
actor UIEngine {
    private var device: Device<SystemRandomNumberGenerator>
    private var links: UILinks?
    private let logger: Logger
    /// Grows with every change this engine makes (a sent message, a read mark, ...).
    private var version = 0

    init(device: Device<SystemRandomNumberGenerator>, logger: Logger) {
        self.device = device
        self.logger = logger
    }

    /// The links start once the device has an identity (at start, or after `init`).
    func startLinks(listen: (host: String, port: Int)?, peers: [String], lan: Bool) async {
        guard links == nil, let identity = try? device.identityKey() else { return }
        let links = UILinks(device: device, identity: identity, logger: logger)
        self.links = links
        await links.reconcileRelays()
        if let listen {
            do { try await links.listen(host: listen.host, port: listen.port) } catch {
                logger.error("cannot listen for direct links on \(listen.host):\(listen.port): \(error)")
            }
        }
        for peer in peers { try? await links.addPeer(peer) }
        if lan { try? await links.setLAN(true) }
        pendingLinks = nil
    }

    /// Where links should go once an identity exists (a first start).
    private var pendingLinks: (listen: (host: String, port: Int)?, peers: [String], lan: Bool)?

    func configureLinks(listen: (host: String, port: Int)?, peers: [String], lan: Bool) async {
        pendingLinks = (listen, peers, lan)
        await startLinks(listen: listen, peers: peers, lan: lan)
    }

    func stop() async { await links?.stop() }

    /// A fingerprint of what the page shows: it changes when a log grows, a link's state or a
    /// read mark changes, or another process on the home writes (one read of the store).
    func fingerprint() async -> [Int64] {
        [Int64(version), Int64(await links?.version ?? 0)] + ((try? device.changeMarks()) ?? [])
    }

    // MARK: Requests

    /// One request frame in, one reply frame out (`{"id", "ok", "result" | "error"}`).
    func reply(to frame: String) async -> String {
        guard let data = frame.data(using: .utf8), data.count <= UISocket.maximumFrame,
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return Self.encode(["ok": false, "error": "the request is not a JSON object"])
        }
        let id = object["id"]
        var reply: [String: Any] = [:]
        if let id = id as? NSNumber { reply["id"] = id } else if let id = id as? String { reply["id"] = id }
        do {
            let op = try Arguments(object).string("op")
            // The operation's name only: arguments may hold a contact code or a message.
            logger.debug("page request", metadata: ["op": "\(op)"])
            let result = try await perform(op, Arguments(object))
            reply["ok"] = true
            reply["result"] = result
        } catch {
            reply["ok"] = false
            reply["error"] = "\(error)"
        }
        return Self.encode(reply)
    }

    static func encode(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return #"{"ok":false,"error":"the reply could not be encoded"}"#
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func perform(_ op: String, _ arguments: Arguments) async throws -> [String: Any] {
        switch op {
        case "overview":
            return try await overview()
        case "init":
            let name = try arguments.string("name").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !name.isEmpty else { throw UIError("choose a name") }
            let id = try device.initialize(name: name)
            version += 1
            if let pending = pendingLinks { await startLinks(listen: pending.listen, peers: pending.peers, lan: pending.lan) }
            return ["id": id.raw.hex, "name": name]
        case "add_contact":
            let contact = try device.addContact(code: try arguments.string("code"), name: try arguments.string("name").trimmingCharacters(in: .whitespaces))
            version += 1
            return ["id": contact.id.raw.hex, "name": contact.name]
        case "create_group":
            let members = try arguments.ids("members")
            let id = try device.createGroup(title: try arguments.string("title"), with: members)
            changedLog()
            return ["group": id.raw.hex]
        case "history":
            return try history(try arguments.group(), after: try arguments.int("after", default: 0))
        case "mark_read":
            try device.markRead(try arguments.group(), upTo: try arguments.int("upto", default: 0))
            version += 1
            return [:]
        case "send":
            let text = try arguments.string("text")
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw UIError("the message is empty") }
            try device.send(text: text, to: try arguments.group())
            changedLog()
            return [:]
        case "group":
            return try group(try arguments.group())
        case "add_member":
            try device.add(try arguments.id("contact"), to: try arguments.group())
            changedLog()
            return [:]
        case "remove_member":
            try device.remove(try arguments.id("member"), from: try arguments.group())
            changedLog()
            return [:]
        case "update_keys":
            try device.update(try arguments.group())
            changedLog()
            return [:]
        case "accept_invitation":
            try device.acceptInvitation(try arguments.group())
            changedLog()
            return [:]
        case "refuse_invitation":
            try device.declineInvitation(try arguments.group())
            version += 1
            return [:]
        case "set_group_relays":
            let relays = try arguments.strings("relays").map { try RelayAddress(parsing: $0) }
            try device.setRelays(relays, for: try arguments.group())
            changedLog()
            await links?.reconcileRelays()
            return [:]
        case "add_relay":
            try device.addRelay(try RelayAddress(parsing: try arguments.string("address").trimmingCharacters(in: .whitespaces)))
            version += 1
            await links?.reconcileRelays()
            return [:]
        case "remove_relay":
            _ = try device.removeRelay(try RelayAddress(parsing: try arguments.string("address")))
            version += 1
            await links?.reconcileRelays()
            return [:]
        case "accept_relay":
            _ = try device.acceptRelay(try RelayAddress(parsing: try arguments.string("address")))
            version += 1
            await links?.reconcileRelays()
            return [:]
        case "set_relay_policy":
            guard let policy = RelayPolicy(rawValue: try arguments.string("policy")) else {
                throw UIError("the relay policy is one of: ask, contacts, always")
            }
            try device.setRelayPolicy(policy)
            version += 1
            return [:]
        case "add_peer":
            guard let links else { throw UIError("choose a name first") }
            try await links.addPeer(try arguments.string("address").trimmingCharacters(in: .whitespaces))
            return [:]
        case "remove_peer":
            await links?.removePeer(try arguments.string("address"))
            return [:]
        case "set_timer":
            let seconds = try arguments.int("seconds", default: 0)
            guard seconds >= 0, seconds < 1 << 32 else { throw UIError("the timer is a number of seconds (0: off)") }
            try device.setDisappearingTimer(UInt64(seconds), for: try arguments.group())
            version += 1
            return [:]
        case "grant":
            let days = try arguments.int("days", default: 30)
            guard (1...365).contains(days) else { throw UIError("a grant lasts 1 to 365 days") }
            let grant = try device.grant(try arguments.group(), to: try arguments.id("contact"), days: UInt64(days))
            changedLog()
            return ["not_after": NSNumber(value: grant.notAfter)]
        case "set_lan":
            guard let links else { throw UIError("choose a name first") }
            try await links.setLAN(try arguments.bool("on"))
            return [:]
        default:
            throw UIError("unknown operation \"\(op)\"")
        }
    }

    /// My own envelope went to the log: live links push it at once.
    private func changedLog() {
        version += 1
        LogActivity.shared.changed()
    }

    // MARK: What the page shows

    private func overview() async throws -> [String: Any] {
        guard let me = try? device.me() else {
            return ["me": NSNull(), "groups": [Any](), "contacts": [Any](), "relays": [Any](), "relay_policy": "ask",
                    "suggested_relays": [Any](), "peers": ["listening": NSNull(), "links": [Any](), "lan": false, "lan_peers": [Any]()],
                    "online": false]
        }
        let profile = try device.profile()
        let names = try device.names()
        func name(_ id: MemberID) -> String { id == me.id ? me.name : names[id] ?? String(id.raw.hex.prefix(12)) }
        let groups: [[String: Any]] = try device.groups().map { group in
            let activity = try device.activity(of: group.id, me: me.id)
            return [
                "id": group.id.raw.hex, "title": Self.title(group), "members": group.members.count, "member": group.isMember,
                "pending_invitation": group.pendingInvitation, "invited_by": group.invitedBy.map { name($0) } ?? NSNull(),
                "unread": activity.unread, "last_time": activity.lastTime.map { NSNumber(value: $0) } ?? NSNull(),
            ]
        }
        let snapshot = await links?.snapshot()
        let relays: [[String: Any]] = try device.relays().map { relay in
            let state = snapshot?.relays[relay.address]
            return [
                "address": relay.address, "connected": state?.connected ?? false,
                "last_sync": relay.lastSync.map { NSNumber(value: $0) } ?? NSNull(),
                "last_error": (state?.connected == true ? nil : state?.error ?? relay.lastError) ?? NSNull(),
                "outbox": (try? device.outboxCount(relay: relay.relay)) ?? 0,
                "groups": relay.groups.map(\.raw.hex),
            ]
        }
        let suggested: [[String: Any]] = try device.suggestedRelays().map { relay in
            ["address": relay.address, "groups": relay.groups.map(\.raw.hex), "suggested_by": relay.suggestedBy.map { name($0) }]
        }
        let peerLinks: [[String: Any]] = (snapshot?.peers ?? []).map { peer in
            ["address": peer.address, "connected": peer.state.connected, "error": peer.state.error ?? NSNull()]
        }
        let inbound = await links?.inboundPeers() ?? []
        let peers: [String: Any] = [
            "listening": snapshot?.listening ?? NSNull(), "links": peerLinks, "lan": snapshot?.lan ?? false,
            "lan_peers": (snapshot?.lanPeers ?? []).map { ["name": name($0.contact), "address": $0.address] },
            "linked_from": inbound.map { name($0) },
        ]
        return [
            "me": ["id": me.id.raw.hex, "name": me.name, "contact_code": profile.contactCode],
            "groups": groups,
            "contacts": try device.contacts().map { ["id": $0.id.raw.hex, "name": $0.name] },
            "relays": relays, "relay_policy": try device.relayPolicy().rawValue, "suggested_relays": suggested,
            "peers": peers, "online": snapshot?.online ?? false,
        ]
    }

    private func history(_ groupID: GroupID, after: Int64) throws -> [String: Any] {
        let me = try device.me().id
        let renderer = HistoryRenderer(names: try device.names(), me: me)
        let myName = try device.me().name
        // Bounded: a page asks again after the last entry it got.
        let entries: [[String: Any]] = try device.history(of: groupID, after: after, limit: 500).map { entry in
            var object: [String: Any] = [
                "id": entry.id, "time": NSNumber(value: entry.time), "mine": entry.sender == me,
                "from": entry.sender.map { $0 == me ? myName : renderer.name($0) } ?? NSNull(),
                "from_id": entry.sender?.raw.hex ?? NSNull(),
                "event": entry.event ?? NSNull(),
                "problem": entry.kind == .event && HistoryRenderer.problemEvents.contains(entry.event ?? ""),
            ]
            switch entry.kind {
            case .message:
                object["kind"] = "message"
                object["text"] = entry.text
            case .event:
                object["kind"] = "event"
                object["text"] = renderer.sentence(entry)
            }
            return object
        }
        return ["entries": entries]
    }

    private func group(_ groupID: GroupID) throws -> [String: Any] {
        let summary = try device.groups().first { $0.id == groupID }
        guard let summary else { throw UIError("this group is not on this device") }
        let me = try device.me().id
        let names = try device.names()
        let contacts = Set(try device.contacts().map(\.id))
        let myName = try device.me().name
        let relays = try? device.relayList(of: groupID)
        return [
            "id": summary.id.raw.hex, "title": Self.title(summary), "member": summary.isMember,
            "pending_invitation": summary.pendingInvitation,
            "invited_by": summary.invitedBy.map { names[$0] ?? String($0.raw.hex.prefix(12)) } ?? NSNull(),
            "members": summary.members.map { id -> [String: Any] in
                ["id": id.raw.hex, "name": (id == me ? myName : names[id]).map { $0 as Any } ?? NSNull(), "me": id == me,
                 "contact": contacts.contains(id)]
            },
            "relays": [
                "list": relays?.relays ?? [],
                "set_by": relays?.setBy.map { $0 == me ? myName : names[$0] ?? String($0.raw.hex.prefix(12)) } ?? NSNull(),
                "set_at": relays.flatMap { $0.setBy == nil ? nil : NSNumber(value: $0.setAt) } ?? NSNull(),
            ],
            "disappear_after": NSNumber(value: summary.disappearAfter),
        ]
    }

    /// A group's title; an invitation's cannot be read before joining.
    static func title(_ group: Device<SystemRandomNumberGenerator>.GroupSummary) -> String {
        group.pendingInvitation ? "An invitation (its name shows once you join)" : group.title
    }

    // MARK: Files (NETWORK.md §14.4)

    /// How an exported file is protected (`dcgka export`'s choices).
    enum FileProtection: Sendable {
        /// Sealed to the groups' participants (the default).
        case participants
        case passphrase(String)
        case plain
    }

    /// A sync file of one group (or all).
    func export(group: String?, protection choice: FileProtection) throws -> (bytes: [UInt8], name: String) {
        let groups = try group.map { [try Arguments.groupID($0)] }
        let all = try groups ?? device.groups().filter { !$0.pendingInvitation }.map(\.id)
        let protection: SyncFile.Protection
        switch choice {
        case .participants: protection = .recipients(try device.participantBundles(of: all))
        case .passphrase(let passphrase): protection = .passphrase(passphrase)
        case .plain: protection = .plain
        }
        let (bytes, _) = try device.exportFile(groups: groups, protection: protection)
        let title = try groups.flatMap { ids in try device.groups().first { $0.id == ids[0] }?.title } ?? "all"
        let safe = String(title.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) ? Character($0) : "-" }.prefix(40))
        return (bytes, "dcgka-\(safe).dcgka")
    }

    func importFile(_ bytes: [UInt8], passphrase: String?) throws -> String {
        let report = try device.importFile(bytes, passphrase: passphrase)
        changedLog()
        return Self.encode([
            "new": report.new, "duplicate": report.duplicate, "rejected": report.rejected, "messages": report.messages,
            "events": report.events, "joined": report.joined.map(\.raw.hex), "invitations": report.invitations.map(\.raw.hex),
            "reasons": report.reasons,
        ])
    }
}

/// A request's arguments, each read with a sentence for what is wrong.
struct Arguments {
    let object: [String: Any]
    init(_ object: [String: Any]) { self.object = object }

    func string(_ key: String) throws -> String {
        guard let value = object[key] as? String else { throw UIError("\"\(key)\" is missing") }
        guard value.utf8.count <= 65_536 else { throw UIError("\"\(key)\" is too long") }
        return value
    }

    func strings(_ key: String) throws -> [String] {
        guard let values = object[key] as? [String], values.count <= 256 else { throw UIError("\"\(key)\" must be a list of texts") }
        return values
    }

    func int(_ key: String, default value: Int64) throws -> Int64 {
        guard let raw = object[key] else { return value }
        guard let number = raw as? NSNumber, let int = Int64(exactly: number.doubleValue) else { throw UIError("\"\(key)\" must be a whole number") }
        return int
    }

    func bool(_ key: String) throws -> Bool {
        guard let value = object[key] as? Bool else { throw UIError("\"\(key)\" must be true or false") }
        return value
    }

    func group() throws -> GroupID { try Self.groupID(try string("group")) }

    func id(_ key: String) throws -> MemberID {
        guard let bytes = Bytes32(hex: try string(key)) else { throw UIError("\"\(key)\" is not an ID") }
        return MemberID(bytes)
    }

    func ids(_ key: String) throws -> [MemberID] {
        try strings(key).map { text in
            guard let bytes = Bytes32(hex: text) else { throw UIError("\"\(key)\" holds something that is not an ID") }
            return MemberID(bytes)
        }
    }

    static func groupID(_ text: String) throws -> GroupID {
        guard let bytes = Bytes32(hex: text) else { throw UIError("not a group ID") }
        return GroupID(bytes)
    }
}
