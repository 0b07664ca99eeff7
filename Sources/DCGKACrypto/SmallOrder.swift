public import DCGKAEncoding

/// Public keys that no honest party has: points of small order, for which a Diffie-Hellman result
/// or a signature says nothing about a secret (§2.1). They are refused when they arrive, so that
/// they can never fail an operation later.
enum SmallOrder {
    /// X25519 u-coordinates of small order, as libsodium lists them (`crypto_scalarmult` blocklist),
    /// compared with the top bit cleared (X25519 ignores it): 0, 1, the two points of order 8, and
    /// p − 1, p, p + 1 (non-canonical encodings of small-order points).
    static let x25519: [[UInt8]] = [
        [UInt8](repeating: 0, count: 32),
        [1] + [UInt8](repeating: 0, count: 31),
        hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        [0xec] + [UInt8](repeating: 0xff, count: 30) + [0x7f],
        [0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f],
        [0xee] + [UInt8](repeating: 0xff, count: 30) + [0x7f],
    ]

    /// Ed25519 encodings of the eight points of small order (the torsion subgroup), canonical and
    /// not (y ≥ p, or x = 0 with the sign bit set), as listed in "Taming the many EdDSAs" (Brendel
    /// et al., 2020). Compared whole: the sign bit matters here.
    static let ed25519: [[UInt8]] = {
        let canonical = [
            "0100000000000000000000000000000000000000000000000000000000000000",  // identity (y = 1)
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // order 2 (y = −1)
            "0000000000000000000000000000000000000000000000000000000000000000",  // order 4 (y = 0)
            "0000000000000000000000000000000000000000000000000000000000000080",  // order 4 (y = 0, x < 0)
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  // order 8
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        ]
        let nonCanonical = [
            "0100000000000000000000000000000000000000000000000000000000000080",  // y = 1, x = −0
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  // y = −1, x = −0
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // y = p ≡ 0
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // y = p + 1 ≡ 1
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ]
        return (canonical + nonCanonical).map(hex)
    }()

    static func hex(_ string: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = string.startIndex
        while index < string.endIndex {
            let next = string.index(index, offsetBy: 2)
            bytes.append(UInt8(string[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }
}

extension PKEPublicKey {
    /// Whether this X25519 key is a point of small order (every Diffie-Hellman with it is all zero).
    public var isLowOrder: Bool {
        var bytes = self.bytes
        bytes[31] &= 0x7f
        return SmallOrder.x25519.contains { ConstantTime.equal($0, bytes) }
    }
}

extension MemberID {
    /// Whether this Ed25519 key is a point of small order: anyone can make signatures that verify
    /// under it (e.g. R = identity, S = 0), so it is no identity.
    public var isSmallOrder: Bool {
        let bytes = self.bytes
        return SmallOrder.ed25519.contains { $0 == bytes }
    }
}

extension KeyBundle {
    /// Refuses keys no honest member has: a small-order identity or a low-order prekey. Checked
    /// whenever a bundle arrives, before it is stored or used (the signature is checked on use).
    public func checkKeys() throws(KeyBundleError) {
        guard !identity.isSmallOrder else { throw .smallOrderIdentity }
        guard !prekey.isLowOrder else { throw .lowOrderPrekey }
    }
}
