public import DCGKAEncoding
public import DCGKAGroup

/// Why a device call was refused. Nothing was committed. `description` is one sentence in words,
/// what the CLI prints.
public enum DeviceError: Error, Equatable, Sendable, CustomStringConvertible {
    case notInitialized
    case alreadyInitialized(name: String)
    case invalidName(String)
    case unknownContact(String, candidates: [String])
    case ambiguousContact(String, candidates: [String])
    case duplicateContactName(String)
    case unknownGroup(String, candidates: [String])
    case ambiguousGroup(String, candidates: [String])
    case contactCode(ContactCodeError)
    case contactIsMe
    /// The newest bundle I have of a contact expired: I cannot start a channel with them.
    case contactBundleExpired(name: String, notAfter: UInt64)
    case group(GroupError)
    case notAMember(title: String)
    case noPendingInvitation(title: String)
    case alreadyMember(name: String)
    case notInGroup(name: String)
    case corruptState(String)
    case textTooLong(bytes: Int, limit: Int)
    case tooManyRelays(Int)

    public var description: String {
        switch self {
        case .notInitialized: "this home has no identity yet; run `dcgka init --name NAME` first"
        case .alreadyInitialized(let name): "this home already has an identity (\(name)); use another --home, or `dcgka wipe` it first"
        case .invalidName(let name): "\"\(name)\" cannot be a name: use 1 to 64 characters, no control characters"
        case .unknownContact(let name, let candidates):
            "no contact is called \"\(name)\"" + Self.list(candidates, "contacts")
        case .ambiguousContact(let name, let candidates):
            "\"\(name)\" matches more than one contact" + Self.list(candidates, "candidates")
        case .duplicateContactName(let name): "a different contact is already called \"\(name)\"; choose another --name"
        case .unknownGroup(let name, let candidates):
            "no group is called \"\(name)\"" + Self.list(candidates, "groups")
        case .ambiguousGroup(let name, let candidates):
            "\"\(name)\" matches more than one group; use more of its ID" + Self.list(candidates, "candidates")
        case .contactCode(let error): error.description
        case .contactIsMe: "that contact code is your own"
        case .contactBundleExpired(let name, let notAfter):
            "the newest key bundle of \(name) expired on \(Timestamp.iso8601(notAfter)); ask them for a fresh contact code (`dcgka whoami`) and run `dcgka contact add CODE --name \(name)` again"
        case .group(let error): "the group refused the operation: \(Self.words(error))"
        case .notAMember(let title): "you are no longer a member of \"\(title)\""
        case .noPendingInvitation(let title): "there is no pending invitation to \"\(title)\""
        case .alreadyMember(let name): "\(name) is already a member"
        case .notInGroup(let name): "\(name) is not a member"
        case .corruptState(let what): "the stored state is damaged (\(what)); this home cannot continue this group"
        case .textTooLong(let bytes, let limit): "the message is \(bytes) bytes long; the limit is \(limit)"
        case .tooManyRelays(let limit): "a group's relay list holds at most \(limit) addresses"
        }
    }

    static func list(_ candidates: [String], _ noun: String) -> String {
        candidates.isEmpty ? "" : " (\(noun): \(candidates.joined(separator: ", ")))"
    }

    static func words(_ error: GroupError) -> String {
        switch error {
        case .notAMember: "you are not a member"
        case .invalidKeyBundle(_, let why): "a key bundle is not valid (\(why))"
        case .protocolError(let error): "\(error)"
        case .messaging(let error): "\(error)"
        case .invitationNotForMe: "the invitation is not for this identity"
        case .refreshRequired: "keys must be refreshed first"
        case .invalidInvitation(let why): "the invitation is not valid (\(why))"
        case .payloadTooLarge(let bytes): "the envelope would be too large (\(bytes) bytes)"
        case .welcomeRefuted(let adder): "the member who added you (\(adder)) gave a history the other members do not hold; this group is set aside"
        }
    }
}
