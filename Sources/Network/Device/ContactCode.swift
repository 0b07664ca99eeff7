public import DCGKACrypto
internal import DCGKAEncoding
internal import Crypto

/// A contact code: a member's newest signed key bundle as one line a person can copy and paste
/// (issue 9, item 5): `dcgka1` followed by the RFC 4648 base32 (lowercase, no padding) of the
/// bundle's canonical bytes and a 4-byte checksum, SHA-256("dcgka contact code" ‖ bundle)[0..<4].
/// The checksum catches a mistyped character before the signature is even looked at.
public enum ContactCode {
    public static let prefix = "dcgka1"
    /// A code is handed out only with a bundle valid for at least this long (30 days).
    public static let minimumValidity: UInt64 = 30 * 86_400

    public static func encode(_ bundle: KeyBundle) -> String {
        let body = bundle.wireBytes
        return prefix + Base32.encode(body + checksum(body))
    }

    /// Decodes and verifies a code against `now`: the checksum, the bundle's encoding, signature,
    /// keys and expiry.
    public static func decode(_ code: String, now: UInt64) throws(ContactCodeError) -> KeyBundle {
        let trimmed = code.trimmingWhitespace().lowercased()
        guard trimmed.hasPrefix(prefix) else { throw .notAContactCode }
        guard let (raw, canonical) = Base32.decode(String(trimmed.dropFirst(prefix.count))), raw.count > 4 else {
            throw .badCharacters
        }
        let body = Array(raw.dropLast(4))
        // Non-zero padding bits in the last character: a changed character, as a checksum would say.
        guard canonical, checksum(body) == Array(raw.suffix(4)) else { throw .badChecksum }
        let bundle: KeyBundle
        do { bundle = try KeyBundle(wireBytes: body) } catch { throw .malformed }
        do { try bundle.verify(now: now) } catch {
            if case .expired = error { throw .expired(notAfter: bundle.notAfter) }
            throw .badSignature
        }
        return bundle
    }

    static func checksum(_ body: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: Array("dcgka contact code".utf8) + body).prefix(4))
    }
}

/// Why a contact code was refused; `description` is the sentence the CLI prints.
public enum ContactCodeError: Error, Equatable, Sendable, CustomStringConvertible {
    case notAContactCode
    case badCharacters
    case badChecksum
    case malformed
    case badSignature
    case expired(notAfter: UInt64)

    public var description: String {
        switch self {
        case .notAContactCode: "this is not a contact code (it should start with \"dcgka1\")"
        case .badCharacters: "the contact code contains characters that cannot be in one; copy it again"
        case .badChecksum: "the contact code's checksum does not match: a character was changed or lost; copy it again"
        case .malformed: "the contact code is damaged (its key bundle does not decode); copy it again"
        case .badSignature: "the contact code's signature is not valid: do not trust it; ask the person for their code again"
        case .expired(let notAfter):
            "the contact code expired on \(Timestamp.iso8601(notAfter)); ask the person to run `dcgka whoami` and send the new code"
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

/// Times as ISO 8601 UTC, computed without Foundation (the engine stays free of clocks).
public enum Timestamp {
    public static func iso8601(_ seconds: UInt64) -> String {
        let days = Int64(seconds / 86_400)
        let rest = Int(seconds % 86_400)
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(Int64(rest / 3600))):\(two(Int64(rest / 60 % 60))):\(two(Int64(rest % 60)))Z"
    }
}
