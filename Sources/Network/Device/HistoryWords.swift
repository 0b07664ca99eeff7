public import DCGKAEncoding

/// History lines in words (the CLI, the demo and the web client say the same), with names as this device knows them.
public struct HistoryRenderer: Sendable {
    public let names: [MemberID: String]
    public let me: MemberID

    public init(names: [MemberID: String], me: MemberID) {
        self.names = names
        self.me = me
    }

    /// Events that tell of something lost or refused: what could not be read, what was
    /// ignored, a removal of me, an equivocation, a history that differs. A client shows them
    /// apart, as warnings.
    public static let problemEvents: Set<String> = [
        "unreadable", "expired", "non-member", "equivocation", "removed-me", "view-mismatch", "welcome-refuted",
    ]

    public func name(_ id: MemberID?) -> String {
        guard let id else { return "someone" }
        if id == me { return "you" }
        return names[id] ?? String(id.raw.hex.prefix(12))
    }

    public func list(_ ids: [MemberID]) -> String { ids.map { name($0) }.joined(separator: ", ") }

    public func sentence(_ entry: HistoryRecord) -> String {
        let who = name(entry.sender)
        let Who = who.prefix(1).uppercased() + who.dropFirst()
        switch entry.event ?? "" {
        case "created": return entry.subjects.isEmpty ? "\(Who) created the group" : "\(Who) created the group with \(list(entry.subjects))"
        case "joined": return "\(Who) added you; you are in the group"
        case "added": return "\(Who) added \(list(entry.subjects))"
        case "removed": return "\(Who) removed \(list(entry.subjects))"
        case "removed-me": return "\(Who) removed you from the group; you will not read anything sent after this"
        case "updated": return "\(Who) refreshed \(entry.sender == me ? "your" : "their") keys"
        case "title": return "\(Who) named the group \"\(entry.text)\""
        case "relays": return "\(Who) suggested relays: \(entry.text)"
        case "relay-used": return "This device now uses \(entry.text) for this group (suggested by \(who))"
        case "unreadable": return "A message from \(who) could not be read: \(entry.text)"
        case "expired": return "A message from \(who) is gone: \(entry.text)"
        case "non-member": return "A message from \(who) was ignored: \(entry.text)"
        case "equivocation":
            return "\(Who) showed different messages to different members (a sign of a compromised or malicious device); the evidence is kept and passed on, and the group removes \(who == "you" ? "you" : "them")"
        case "removed-equivocator":
            return "\(Who) removed \(list(entry.subjects)), who showed different messages to different members"
        case "view-mismatch":
            return "\(Who) sees the group's members differently from what this device computes for them (a damaged history or a dishonest member)"
        case "welcome-refuted":
            return "\(Who) added you with a history the other members do not hold; this device takes nothing more from the group. Ask another member to add you again"
        default: return "\(Who): \(entry.text)"
        }
    }

    public func line(_ entry: HistoryRecord) -> String {
        let time = Self.shortTime(entry.time)
        switch entry.kind {
        case .message: return "[\(time)] \(name(entry.sender)): \(entry.text)"
        case .event: return "[\(time)] * \(sentence(entry))"
        }
    }

    /// `YYYY-MM-DD HH:MM` in UTC.
    public static func shortTime(_ seconds: UInt64) -> String {
        let iso = Timestamp.iso8601(seconds)
        return String(iso.prefix(16).map { $0 == "T" ? " " : $0 })
    }
}

