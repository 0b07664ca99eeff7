/// Why a byte string is not the canonical encoding of the value that was asked for.
///
/// Every decoder in swift-dcgka is total: whatever the input, it returns a value or one of
/// these errors, never traps, never loops without consuming input, and never allocates more
/// than the input's length justifies.
public enum WireError: Error, Equatable, Hashable, Sendable {
    /// The input ended before the value did.
    case truncated
    /// Bytes were left over after a complete value.
    case trailingBytes(count: Int)
    /// A LEB128 varint used more bytes than needed (only the shortest form is canonical).
    case nonCanonicalVarint
    /// A varint does not fit in 64 bits.
    case varintOverflow
    /// A length or count is larger than the limit for that field.
    case lengthExceedsLimit(field: String, limit: Int, actual: UInt64)
    /// A tag byte that names no known variant.
    case unknownTag(field: String, tag: UInt8)
    /// A version this implementation does not speak.
    case unsupportedVersion(UInt8)
    /// A cipher suite this implementation does not know.
    case unsupportedSuite(UInt8)
    /// A field holds a value that is well-formed bytes but not allowed (unsorted set, duplicate key, bad flag, ...).
    case invalidValue(field: String)
}
