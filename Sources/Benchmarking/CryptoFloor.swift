public import DCGKACrypto
import DCGKAEncoding

/// Public-key operations: what one role of one operation cannot do without (symmetric work —
/// HKDF, ChaCha20-Poly1305, SHA-256 — is left out, it is small next to these).
///
/// The units are the calls the protocol makes through `DCGKACrypto`:
/// - `sign`: Ed25519 signature (`IdentityKey.sign`), one per envelope sent;
/// - `verify`: Ed25519 verification (`MemberID.isValidSignature`), one per envelope received
///   and one per key bundle used for the first time;
/// - `keygen`: X25519 key pair (`PKESecretKey.generate`: a fixed-base scalar multiplication);
/// - `seal`: HPKE base-mode seal with a given ephemeral key (`HPKEBase.seal`: one X25519 DH plus
///   the key schedule and the AEAD); the ephemeral key is counted as a `keygen`;
/// - `open`: HPKE base-mode open (`HPKEBase.open`: one X25519 DH plus the key schedule and the AEAD).
///
/// A 2SM send (§3.2) is 2 keygens (my next key, the peer's next key) + 1 keygen (HPKE's
/// ephemeral) + 1 seal; a 2SM receive (§3.3) is 1 open.
public struct CryptoCounts: Sendable, Equatable {
    public var sign = 0.0
    public var verify = 0.0
    public var keygen = 0.0
    public var seal = 0.0
    public var open = 0.0

    public init(sign: Double = 0, verify: Double = 0, keygen: Double = 0, seal: Double = 0, open: Double = 0) {
        self.sign = sign
        self.verify = verify
        self.keygen = keygen
        self.seal = seal
        self.open = open
    }

    static func + (a: CryptoCounts, b: CryptoCounts) -> CryptoCounts {
        CryptoCounts(
            sign: a.sign + b.sign, verify: a.verify + b.verify, keygen: a.keygen + b.keygen,
            seal: a.seal + b.seal, open: a.open + b.open)
    }

    /// `k` 2SM sends.
    static func twoPartySends(_ k: Double) -> CryptoCounts { CryptoCounts(keygen: 3 * k, seal: k) }

    /// The floor in milliseconds with the given unit costs.
    public func milliseconds(_ costs: PrimitiveCosts) -> Double {
        sign * costs.signMs + verify * costs.verifyMs + keygen * costs.keygenMs + seal * costs.sealMs + open * costs.openMs
    }
}

/// The roles whose CPU time `dcgka bench` reports.
public enum BenchRole: String, CaseIterable, Sendable {
    /// The sender generating the operation (sign, 2SM sends, bundle checks).
    case senderGeneration = "sender_generation"
    /// The sender processing what comes back (the prototype's `sender_cpu_ms_mean`).
    case sender
    /// The sender, generation included (`sender_total_cpu_ms_mean`).
    case senderTotal = "sender_total"
    /// One other member, mean over the recipients as the CSV counts them.
    case recipient
    /// Add only: the new member.
    case addedMember = "added_member"
}

/// How many public-key operations each role needs, derived from the protocol (PROTOCOL.md §3, §5,
/// §6) for the bench's scenario: `n` members before the operation, the creator performs it, all
/// 2SM channels the creator needs exist from the create; every envelope is delivered to every
/// other member holding the group, and every delivered envelope's signature is checked once.
public enum CryptoFloor {
    /// Counts for one role, or nil where the role does not exist (e.g. the added member outside `add`).
    public static func counts(_ operation: BenchOperation, role: BenchRole, groupSize n: Int) -> CryptoCounts? {
        let n = Double(n)
        switch (operation, role) {
        case (_, .senderTotal):
            return counts(operation, role: .senderGeneration, groupSize: Int(n))! + counts(operation, role: .sender, groupSize: Int(n))!

        // create: the creator checks the n−1 bundles it is given, starts 2SM with each of them
        // (n−1 sends to their prekeys) and signs the create; it then checks the n−1 acks.
        // Each other member checks the create, opens its seed (1 open, with its prekey), signs
        // its ack, and checks the n−2 acks of the other members.
        case (.create, .senderGeneration):
            return CryptoCounts(sign: 1, verify: n - 1) + .twoPartySends(n - 1)
        case (.create, .sender):
            return CryptoCounts(verify: n - 1)
        case (.create, .recipient):
            return CryptoCounts(sign: 1, verify: 1 + (n - 2), open: 1)

        // update: the sender sends the seed to n−1 members over 2SM and signs; checks n−1 acks.
        // A recipient checks the update, opens its seed, signs its ack, checks the n−2 other acks.
        case (.update, .senderGeneration):
            return CryptoCounts(sign: 1) + .twoPartySends(n - 1)
        case (.update, .sender):
            return CryptoCounts(verify: n - 1)
        case (.update, .recipient):
            return CryptoCounts(sign: 1, verify: 1 + (n - 2), open: 1)

        // remove (of one member R): the seed goes to the n−2 remaining others; the sender checks
        // n−1 acks (R acknowledges too: a removed member keeps processing, PROTOCOL-NOTES.md).
        // Recipients, R included (quirk 2): each checks the remove and the n−2 acks of the
        // others and signs its ack; the n−2 remaining open their seed, R has none.
        // Mean over the n−1 recipients: open (n−2)/(n−1).
        case (.remove, .senderGeneration):
            return CryptoCounts(sign: 1) + .twoPartySends(n - 2)
        case (.remove, .sender):
            return CryptoCounts(verify: n - 1)
        case (.remove, .recipient):
            return CryptoCounts(sign: 1, verify: 1 + (n - 2), open: (n - 2) / (n - 1))

        // add (of a new member A): the sender checks A's bundle, sends A its ratchet state over
        // 2SM (a new channel: A's prekey) and signs; it checks the n−1 add-acks and A's welcome-ack.
        // An existing member checks the add, checks A's bundle and sends A its ratchet state
        // (a new channel), signs its add-ack, and checks the n−2 other add-acks and A's welcome-ack.
        // A checks the add, opens the sender's ratchet state, signs its welcome-ack, and checks
        // the n−1 add-acks, opening the ratchet state each carries (n−1 opens).
        case (.add, .senderGeneration):
            return CryptoCounts(sign: 1, verify: 1) + .twoPartySends(1)
        case (.add, .sender):
            return CryptoCounts(verify: n)
        case (.add, .recipient):
            return CryptoCounts(sign: 1, verify: 1 + 1 + (n - 2) + 1) + .twoPartySends(1)
        case (.add, .addedMember):
            return CryptoCounts(sign: 1, verify: 1 + (n - 1), open: 1 + (n - 1))

        // message: one signature; each recipient checks it (the rest is symmetric).
        case (.message, .senderGeneration):
            return CryptoCounts(sign: 1)
        case (.message, .sender):
            return CryptoCounts()
        case (.message, .recipient):
            return CryptoCounts(verify: 1)

        case (_, .addedMember):
            return nil
        }
    }

    /// The formulas above, for the documentation and the `--floor` table.
    public static let formulas: [(BenchOperation, BenchRole, String)] = [
        (.create, .senderGeneration, "(n-1) verify [bundles] + (n-1) 2SM sends + 1 sign"),
        (.create, .sender, "(n-1) verify [acks]"),
        (.create, .recipient, "1 verify [create] + 1 open + 1 sign [ack] + (n-2) verify [acks]"),
        (.update, .senderGeneration, "(n-1) 2SM sends + 1 sign"),
        (.update, .sender, "(n-1) verify [acks]"),
        (.update, .recipient, "1 verify [update] + 1 open + 1 sign [ack] + (n-2) verify [acks]"),
        (.remove, .senderGeneration, "(n-2) 2SM sends + 1 sign"),
        (.remove, .sender, "(n-1) verify [acks, the removed member's included]"),
        (.remove, .recipient, "1 verify [remove] + (n-2)/(n-1) open + 1 sign [ack] + (n-2) verify [acks]"),
        (.add, .senderGeneration, "1 verify [bundle] + 1 2SM send + 1 sign"),
        (.add, .sender, "(n-1) verify [add-acks] + 1 verify [welcome-ack]"),
        (.add, .recipient, "1 verify [add] + 1 verify [bundle] + 1 2SM send + 1 sign [add-ack] + (n-2) verify [add-acks] + 1 verify [welcome-ack]"),
        (.add, .addedMember, "1 verify [add] + 1 open [welcome] + 1 sign [welcome-ack] + (n-1) (verify + open) [add-acks]"),
        (.message, .senderGeneration, "1 sign"),
        (.message, .sender, "0"),
        (.message, .recipient, "1 verify"),
    ]
}

/// Measured cost of each public-key primitive, in milliseconds of thread CPU time (median of batches).
public struct PrimitiveCosts: Sendable, Equatable {
    public var signMs: Double
    public var verifyMs: Double
    public var keygenMs: Double
    public var sealMs: Double
    public var openMs: Double

    public init(signMs: Double, verifyMs: Double, keygenMs: Double, sealMs: Double, openMs: Double) {
        self.signMs = signMs
        self.verifyMs = verifyMs
        self.keygenMs = keygenMs
        self.sealMs = sealMs
        self.openMs = openMs
    }

    /// Times the primitives through `DCGKACrypto` on messages of the sizes the protocol uses
    /// (a 200-byte envelope to sign, a 2SM plaintext of 90 bytes).
    public static func measure(batches: Int = 25, perBatch: Int = 8, seed: UInt64 = 7) -> PrimitiveCosts {
        var rng = SeededRandom(seed: seed)
        let identity = IdentityKey.generate(using: &rng)
        let message = rng.bytes(200)
        let signature = identity.sign(message)
        let recipient = PKESecretKey.generate(using: &rng)
        let ephemeral = PKESecretKey.generate(using: &rng)
        let info = rng.bytes(106)
        let aad = rng.bytes(2)
        let plaintext = rng.bytes(90)
        let ciphertext = try! HPKEBase.seal(to: recipient.publicKey, info: info, aad: aad, plaintext: plaintext, ephemeral: ephemeral)

        var sink = 0
        func time(_ body: () -> Int) -> Double {
            var perCall: [Double] = []
            for _ in 0..<batches {
                let start = threadCPUNanoseconds()
                for _ in 0..<perBatch { sink &+= body() }
                perCall.append(Double(threadCPUNanoseconds() - start) / Double(perBatch) / 1_000_000)
            }
            return median(perCall)
        }
        let sign = time { Int(identity.sign(message).bytes[0]) }
        let verify = time { identity.id.isValidSignature(signature, for: message) ? 1 : 0 }
        let keygen = time { Int(PKESecretKey.generate(using: &rng).publicKey.raw.bytes[0]) }
        let seal = time {
            let out = try! HPKEBase.seal(to: recipient.publicKey, info: info, aad: aad, plaintext: plaintext, ephemeral: ephemeral)
            return Int(out[0])
        }
        let open = time { (try? HPKEBase.open(with: recipient, info: info, aad: aad, ciphertext: ciphertext))?.count ?? 0 }
        precondition(sink != Int.min)
        return PrimitiveCosts(signMs: sign, verifyMs: verify, keygenMs: keygen, sealMs: seal, openMs: open)
    }
}
