public import DCGKAEncoding
public import DCGKACrypto
public import CausalBroadcast
public import Sync
internal import Crypto
internal import _CryptoExtras

/// The sneakernet file of NETWORK.md §14.4: §11 sync messages, framed, behind a header that says
/// how the body is protected. Layout (PROTOCOL-NOTES.md, "Sync files"):
///
///     "DCGKA-FILE" ‖ version (1) ‖ protection tag (1) ‖ protection fields
///     body: plain → frames; otherwise chunks `varint length ‖ ChaCha20-Poly1305(chunk)`
///
/// The body's frames are `hello(exporter, groups)`, then per group `have(group, vector)`,
/// `summary(group, count, bytes)` and `envelopes(group, …)` messages of at most 1 MiB.
///
/// Protection: `recipients` seals a random 32-byte file key to each recipient's bundle prekey
/// with HPKE (info "DCGKA file key", the header so far as AAD); `passphrase` derives it with
/// scrypt. Chunk `i` (of at most 1 MiB) uses nonce `i` (11 bytes, big endian) ‖ last-chunk flag,
/// and the whole header as AAD, so reordering, truncation and header changes are detected.
public enum SyncFile {
    public static let magic = Array("DCGKA-FILE".utf8)
    public static let version: UInt8 = 1
    public static let chunkBytes = 1 << 20
    public static let maximumRecipients = 4096
    static let fileKeyInfo = Array("DCGKA file key".utf8)

    public enum Protection: Sendable {
        case plain
        /// Sealed to each of these bundles' prekeys.
        case recipients([KeyBundle])
        case passphrase(String, ScryptCost = .default)
    }

    /// scrypt's cost; the reader refuses costs past ``ScryptCost/maximumMemory``.
    public struct ScryptCost: Sendable, Equatable {
        public var logN: UInt8
        public var r: UInt8
        public var p: UInt8
        /// N = 2^15, r = 8, p = 1: 32 MiB, about 0.1 s here.
        public static let `default` = ScryptCost(logN: 15, r: 8, p: 1)
        /// 128 · r · N bytes at most (256 MiB).
        public static let maximumMemory = 256 << 20
        public init(logN: UInt8, r: UInt8, p: UInt8) {
            self.logN = logN
            self.r = r
            self.p = p
        }
        var memory: Int { 128 * Int(r) << Int(logN) }
        var isAcceptable: Bool { logN >= 10 && logN <= 22 && r >= 1 && p >= 1 && p <= 4 && memory <= Self.maximumMemory }
    }

    /// One group's part of a file.
    public struct GroupPart: Sendable, Equatable {
        public var group: GroupID
        /// The exporter's version vector of the group (what it held when it wrote the file).
        public var vector: Frontier
        /// Envelopes in wire form, in the exporter's log order.
        public var envelopes: [[UInt8]]
        /// Runs whose application payloads the exporter no longer has (their headers are in
        /// `envelopes`; never silently omitted, §11.1).
        public var pruned: [SeqRange]
        /// Fork pairs the exporter holds as evidence (PROTOCOL.md §6.2), passed on.
        public var evidence: [[[UInt8]]]
        public init(group: GroupID, vector: Frontier, envelopes: [[UInt8]], pruned: [SeqRange] = [], evidence: [[[UInt8]]] = []) {
            self.group = group
            self.vector = vector
            self.envelopes = envelopes
            self.pruned = pruned
            self.evidence = evidence
        }
    }

    public struct Contents: Sendable, Equatable {
        public var exporter: MemberID
        public var groups: [GroupPart]
        public var protection: String
    }

    // MARK: Writing

    public static func write<R: RandomNumberGenerator>(
        exporter: MemberID, groups: [GroupPart], protection: Protection, using rng: inout R
    ) throws(SyncFileError) -> [UInt8] {
        var body: [UInt8] = []
        body += SyncFraming.frame(.hello(Hello(holder: exporter, groups: groups.map(\.group), maximumFrameBytes: UInt32(SyncFraming.hardMaximumFrameBytes))))
        for part in groups {
            body += SyncFraming.frame(.have(part.group, part.vector))
            if !part.pruned.isEmpty { body += SyncFraming.frame(.pruned(part.group, Array(part.pruned.prefix(SyncMessage.maximumItems)))) }
            for pair in part.evidence where pair.count == 2 { body += SyncFraming.frame(.evidence(part.group, pair[0], pair[1])) }
            let bytes = part.envelopes.reduce(0) { $0 + $1.count }
            body += SyncFraming.frame(.summary(part.group, count: UInt64(part.envelopes.count), bytes: UInt64(bytes)))
            var batch: [[UInt8]] = []
            var batchBytes = 0
            for wire in part.envelopes {
                if !batch.isEmpty, batchBytes + wire.count > chunkBytes || batch.count >= SyncMessage.maximumItems {
                    body += SyncFraming.frame(.envelopes(part.group, batch))
                    batch = []
                    batchBytes = 0
                }
                batch.append(wire)
                batchBytes += wire.count + 5
            }
            if !batch.isEmpty { body += SyncFraming.frame(.envelopes(part.group, batch)) }
        }
        var header = WireWriter()
        header.writeFixed(magic)
        header.writeUInt8(version)
        let key: SymmetricKey
        switch protection {
        case .plain:
            header.writeUInt8(0)
            return header.bytes + body
        case .recipients(let bundles):
            guard !bundles.isEmpty, bundles.count <= maximumRecipients else { throw .noRecipients }
            header.writeUInt8(1)
            let fileKey = rng.bytes(32)
            key = SymmetricKey(data: fileKey)
            let aad = header.bytes
            header.writeVarint(bundles.count)
            for bundle in bundles {
                header.write(bundle.identity)
                header.write(bundle.prekey)
                do {
                    let sealed = try HPKEBase.seal(
                        to: bundle.prekey, info: fileKeyInfo, aad: aad, plaintext: fileKey,
                        ephemeral: PKESecretKey.generate(using: &rng))
                    header.writeFixed(sealed)
                } catch { throw .recipientKeyUnusable(bundle.identity) }
            }
        case .passphrase(let passphrase, let cost):
            header.writeUInt8(2)
            let salt = rng.bytes(16)
            header.writeFixed(salt)
            header.writeUInt8(cost.logN)
            header.writeUInt8(cost.r)
            header.writeUInt8(cost.p)
            key = try derive(passphrase, salt: salt, cost: cost)
        }
        let aad = header.bytes
        var out = header.bytes
        var index: UInt64 = 0
        var offset = 0
        repeat {
            let end = min(body.count, offset + chunkBytes)
            let last = end == body.count
            let sealed: ChaChaPoly.SealedBox
            do {
                sealed = try ChaChaPoly.seal(body[offset..<end], using: key, nonce: nonce(index, last: last), authenticating: aad)
            } catch { throw .encryptionFailed }
            var chunk = WireWriter()
            chunk.writeLengthPrefixed(Array(sealed.ciphertext) + Array(sealed.tag))
            out += chunk.bytes
            index += 1
            offset = end
        } while offset < body.count
        return out
    }

    static func nonce(_ index: UInt64, last: Bool) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { bytes[10 - i] = UInt8(truncatingIfNeeded: index >> (8 * UInt64(i))) }
        bytes[11] = last ? 1 : 0
        // 12 bytes is ChaChaPoly's nonce size; this cannot fail.
        return (try? ChaChaPoly.Nonce(data: bytes)) ?? ChaChaPoly.Nonce()
    }

    static func derive(_ passphrase: String, salt: [UInt8], cost: ScryptCost) throws(SyncFileError) -> SymmetricKey {
        guard cost.isAcceptable else { throw .unacceptableScryptCost }
        do {
            return try KDF.Scrypt.deriveKey(
                from: Array(passphrase.utf8), salt: salt, outputByteCount: 32, rounds: 1 << Int(cost.logN),
                blockSize: Int(cost.r), parallelism: Int(cost.p))
        } catch { throw .unacceptableScryptCost }
    }

    // MARK: Reading

    /// How the reader can open the body: its identity and prekeys, or a passphrase.
    public struct Opener: Sendable {
        public var me: MemberID?
        public var prekeys: PrekeyStore
        public var passphrase: String?
        public init(me: MemberID?, prekeys: PrekeyStore, passphrase: String? = nil) {
            self.me = me
            self.prekeys = prekeys
            self.passphrase = passphrase
        }
    }

    /// Opens and parses a file. Bounded: nothing is allocated past what the file's bytes justify.
    public static func read(_ bytes: [UInt8], opener: Opener) throws(SyncFileError) -> Contents {
        var reader = WireReader(bytes)
        let protectionName: String
        let body: [UInt8]
        do {
            guard bytes.count >= magic.count + 2, Array(bytes.prefix(magic.count)) == magic else { throw SyncFileError.notASyncFile }
            _ = try reader.readFixed(magic.count)
            let fileVersion = try reader.readUInt8()
            guard fileVersion == version else { throw SyncFileError.unsupportedVersion(fileVersion) }
            let tag = try reader.readUInt8()
            switch tag {
            case 0:
                protectionName = "plain"
                body = Array(bytes[reader.offset...])
            case 1:
                protectionName = "recipients"
                let aad = Array(bytes[0..<reader.offset])
                let count = try reader.readBoundedVarint(field: "recipients", limit: maximumRecipients)
                guard count <= reader.remaining / 144 else { throw WireError.truncated }
                var fileKey: [UInt8]?
                var named = false
                for _ in 0..<count {
                    let id = try reader.read(MemberID.self)
                    let prekey = try reader.read(PKEPublicKey.self)
                    let sealed = try reader.readFixed(HPKEBase.overhead + 32)
                    guard id == opener.me else { continue }
                    named = true
                    if fileKey == nil, let secret = opener.prekeys.secret(for: prekey) {
                        fileKey = try? HPKEBase.open(with: secret, info: fileKeyInfo, aad: aad, ciphertext: sealed)
                    }
                }
                guard let fileKey else { throw named ? SyncFileError.keyGone : SyncFileError.notForMe }
                body = try decrypt(&reader, bytes: bytes, key: SymmetricKey(data: fileKey), keyIsAuthenticated: true)
            case 2:
                protectionName = "passphrase"
                let salt = try reader.readFixed(16)
                let cost = ScryptCost(logN: try reader.readUInt8(), r: try reader.readUInt8(), p: try reader.readUInt8())
                guard let passphrase = opener.passphrase else { throw SyncFileError.passphraseRequired }
                let key = try derive(passphrase, salt: salt, cost: cost)
                body = try decrypt(&reader, bytes: bytes, key: key, keyIsAuthenticated: false)
            default:
                throw SyncFileError.malformed("unknown protection \(tag)")
            }
        } catch let error as SyncFileError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
        return try parse(body, protection: protectionName)
    }

    /// `keyIsAuthenticated`: the key came out of an HPKE box bound to this header, so a chunk that
    /// fails is tampering; a passphrase's key failing on the first chunk is most likely a wrong
    /// passphrase.
    static func decrypt(_ reader: inout WireReader, bytes: [UInt8], key: SymmetricKey, keyIsAuthenticated: Bool) throws -> [UInt8] {
        let aad = Array(bytes[0..<reader.offset])
        var body: [UInt8] = []
        var index: UInt64 = 0
        var sawLast = false
        while !reader.isAtEnd {
            guard !sawLast else { throw SyncFileError.malformed("bytes after the last chunk") }
            let chunk = try reader.readLengthPrefixed(field: "chunk", limit: chunkBytes + 16)
            guard chunk.count >= 16 else { throw SyncFileError.malformed("short chunk") }
            let ciphertext = chunk.dropLast(16)
            let tag = chunk.suffix(16)
            var opened: [UInt8]?
            for last in [true, false] {
                if let box = try? ChaChaPoly.SealedBox(nonce: nonce(index, last: last), ciphertext: ciphertext, tag: tag),
                   let plain = try? ChaChaPoly.open(box, using: key, authenticating: aad) {
                    opened = Array(plain)
                    sawLast = last
                    break
                }
            }
            guard let opened else { throw index == 0 && !keyIsAuthenticated ? SyncFileError.wrongKey : SyncFileError.tampered }
            body += opened
            index += 1
        }
        guard sawLast else { throw SyncFileError.truncated }
        return body
    }

    static func parse(_ body: [UInt8], protection: String) throws(SyncFileError) -> Contents {
        var frames = SyncFrameReader(maximumFrameBytes: SyncFraming.hardMaximumFrameBytes)
        frames.append(body)
        var exporter: MemberID?
        var parts: [GroupPart] = []
        var index: [GroupID: Int] = [:]
        while true {
            let message: SyncMessage?
            do { message = try frames.next() } catch { throw .malformed("\(error)") }
            guard let message else { break }
            switch message {
            case .hello(let hello):
                guard exporter == nil else { throw .malformed("two hello messages") }
                exporter = hello.holder
            case .have(let group, let vector):
                guard exporter != nil, index[group] == nil else { throw .malformed("unexpected have") }
                index[group] = parts.count
                parts.append(GroupPart(group: group, vector: vector, envelopes: []))
            case .summary:
                break
            case .pruned(let group, let ranges):
                guard let at = index[group] else { throw .malformed("pruned ranges of a group the file did not announce") }
                parts[at].pruned += ranges
            case .evidence(let group, let first, let second):
                guard let at = index[group] else { throw .malformed("evidence of a group the file did not announce") }
                parts[at].evidence.append([first, second])
            case .envelopes(let group, let wires):
                guard let at = index[group] else { throw .malformed("envelopes of a group the file did not announce") }
                parts[at].envelopes += wires
            default:
                throw .malformed("unexpected message in a file")
            }
        }
        guard frames.isAtFrameBoundary else { throw .truncated }
        guard let exporter else { throw .malformed("no hello") }
        return Contents(exporter: exporter, groups: parts, protection: protection)
    }
}

/// Why a file was refused; nothing of it was imported. `description` is the CLI's sentence.
public enum SyncFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case notASyncFile
    case unsupportedVersion(UInt8)
    case malformed(String)
    case truncated
    case tampered
    case notForMe
    case keyGone
    case wrongKey
    case passphraseRequired
    case unacceptableScryptCost
    case noRecipients
    case recipientKeyUnusable(MemberID)
    case encryptionFailed

    public var description: String {
        switch self {
        case .notASyncFile: "this is not a dcgka sync file"
        case .unsupportedVersion(let version): "the file is of format version \(version), which this dcgka cannot read; update dcgka"
        case .malformed(let why): "the file is damaged (\(why))"
        case .truncated: "the file is incomplete (it was cut short); copy it again"
        case .tampered: "the file was changed after it was written (a chunk does not authenticate); do not trust its source"
        case .notForMe: "the file is encrypted for other people, not for this identity"
        case .keyGone: "the file is encrypted to a key of yours that this device no longer has (it expired); ask for a new file"
        case .wrongKey: "the file does not open with this key or passphrase"
        case .passphraseRequired: "the file is protected by a passphrase; give it with --passphrase"
        case .unacceptableScryptCost: "the file's passphrase protection asks for more memory than allowed"
        case .noRecipients: "nobody to encrypt the file to; name contacts with --for, or use --passphrase or --plain"
        case .recipientKeyUnusable(let id): "the key of \(id) cannot be used to encrypt to"
        case .encryptionFailed: "the file could not be encrypted"
        }
    }
}
