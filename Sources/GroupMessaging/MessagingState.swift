@_spi(PlantedDefects) public import DCGKAEncoding
public import DCGKACrypto

/// Position of a message in a sender's stream: ordered by epoch, then index.
struct MessagePosition: Sendable, Hashable, Comparable {
    var epoch: UInt64
    var index: UInt64
    static func < (lhs: MessagePosition, rhs: MessagePosition) -> Bool {
        lhs.epoch != rhs.epoch ? lhs.epoch < rhs.epoch : lhs.index < rhs.index
    }
}

/// A message key derived ahead of use because later messages arrived first, or kept for a
/// message delivered without its payload (then with that envelope's hash, so that only a full copy
/// of exactly that envelope opens it).
struct SkippedKey: Sendable, Equatable {
    var position: MessagePosition
    var key: MessageKey
    var envelope: Bytes32? = nil
}

/// What I keep about one member's message ratchet (§7). The same record serves my own sending
/// chain (for my ID) and a sender's receiving chain (for every other ID).
struct MemberRatchet: Sendable, Equatable {
    /// The member's current epoch.
    var epoch: UInt64
    /// Index of the next message key `chain` yields.
    var nextIndex: UInt64
    /// `chain_nextIndex` of the current epoch. Older chains are gone.
    var chain: Bytes32
    /// Keys skipped over, strictly ascending by position, all behind `(epoch, nextIndex)`.
    var skipped: [SkippedKey]

    /// Position of `position` in `skipped`, by binary search.
    func skippedSlot(_ position: MessagePosition) -> Int? {
        var low = 0
        var high = skipped.count
        while low < high {
            let mid = (low + high) / 2
            if skipped[mid].position < position { low = mid + 1 } else { high = mid }
        }
        return low < skipped.count && skipped[low].position == position ? low : nil
    }
}

/// Secure group messaging state of one member in one group (§7): a message ratchet per member,
/// keyed by that member's latest DCGKA update secret, plus bounded stores of skipped keys.
///
/// Every mutating call either succeeds or leaves the state exactly as it was. Keys and chain
/// values are dropped from the state as soon as they are used; the encoding (``WireCodable``)
/// therefore contains no deleted key.
public struct MessagingState: Sendable, Equatable, WireCodable {
    public let suite: CipherSuiteID
    /// The limits in force (clamped to ``MessagingConfiguration/hardLimit``).
    public let configuration: MessagingConfiguration
    var members: [MemberID: MemberRatchet]
    /// Simulator only (`nil` otherwise, never encoded or compared): every chain value and message
    /// key this state used up or dropped, and so must have deleted (§7), for the secret inventory.
    @_spi(Simulation) public internal(set) var retiredSecrets: [Bytes32]?

    /// Starts recording ``retiredSecrets`` (simulator only).
    @_spi(Simulation) public mutating func startTracing() { retiredSecrets = [] }
    @_spi(Simulation) public mutating func stopTracing() { retiredSecrets = nil }

    /// Hands over what was recorded since the last call.
    @_spi(Simulation) public mutating func takeRetiredSecrets() -> [Bytes32] {
        guard let retired = retiredSecrets else { return [] }
        retiredSecrets = []
        return retired
    }

    @inline(__always) mutating func retire(_ secret: Bytes32) {
        if retiredSecrets != nil { retiredSecrets!.append(secret) }
    }

    public static func == (lhs: MessagingState, rhs: MessagingState) -> Bool {
        lhs.suite == rhs.suite && lhs.configuration == rhs.configuration && lhs.members == rhs.members
    }

    /// Version byte of the state encoding.
    public static let encodingVersion: UInt8 = 2
    /// At most this many member records in a decoded state.
    public static let maximumMembers = 1 << 20

    public init(suite: CipherSuiteID, configuration: MessagingConfiguration = .init()) {
        self.suite = suite
        self.configuration = configuration.normalized
        self.members = [:]
    }

    /// Members I hold a ratchet for, sorted.
    public var knownMembers: [MemberID] { members.keys.sorted() }

    /// A new update secret for `member` (possibly me) from its control envelope `epoch` (§5.4, §7).
    ///
    /// The member's previous chain is deleted; its skipped keys stay in the bounded store. An epoch
    /// not newer than the member's current one is ignored and returns false.
    @discardableResult
    public mutating func startEpoch(for member: MemberID, epoch: UInt64, updateSecret: Bytes32) -> Bool {
        if let current = members[member]?.epoch, epoch <= current { return false }
        let chain = MessageRatchet.initialChain(updateSecret: updateSecret, suite: suite.suite)
        if retiredSecrets != nil {
            retire(updateSecret)  // only its chain is kept
            if let old = members[member]?.chain { retire(old) }
        }
        members[member, default: MemberRatchet(epoch: epoch, nextIndex: 0, chain: chain, skipped: [])]
            .replaceChain(epoch: epoch, chain: chain)
        return true
    }

    /// Encrypts my next message in my current epoch. `header(epoch, index)` builds the envelope
    /// header (the caller fills in version, group, seq, prev...); it must name me, this state's suite,
    /// and the epoch and index it is given. `key_i` and `chain_i` are deleted.
    public mutating func encrypt(
        _ plaintext: [UInt8], as me: MemberID,
        header: (_ epoch: UInt64, _ index: UInt64) -> ApplicationHeader
    ) throws(MessagingError) -> ApplicationCiphertext {
        guard var record = members[me] else { throw .noEpoch }
        guard record.nextIndex < UInt64.max else { throw .chainExhausted }
        let cipherSuite = suite.suite
        guard plaintext.count <= ApplicationCiphertext.maximumCiphertextLength - cipherSuite.aeadOverhead else {
            throw .plaintextTooLong
        }
        let position = MessagePosition(epoch: record.epoch, index: record.nextIndex)
        let fields = header(position.epoch, position.index)
        guard fields.sender == me, fields.suite == suite,
              fields.epoch == position.epoch, fields.index == position.index
        else { throw .headerMismatch }

        let (messageKey, next) = MessageRatchet.step(record.chain, suite: cipherSuite)
        let ciphertext = cipherSuite.aeadSeal(
            key: messageKey.key.bytes, nonce: messageKey.nonce, aad: fields.associatedData, plaintext: plaintext)
        retire(record.chain)
        retire(messageKey.key)
        record.chain = next
        record.nextIndex += 1
        members[me] = record
        return ApplicationCiphertext(epoch: position.epoch, index: position.index, ciphertext: ciphertext)
    }

    /// Which epoch and index my next message will use (nil if I have no epoch).
    public func nextSendPosition(for me: MemberID) -> (epoch: UInt64, index: UInt64)? {
        members[me].map { ($0.epoch, $0.nextIndex) }
    }

    /// Decrypts another member's message. `header` is the envelope's header; its sender selects
    /// the ratchet, and its epoch and index must equal the message's. On failure nothing changes.
    public mutating func decrypt(
        _ message: ApplicationCiphertext, header: ApplicationHeader
    ) -> Result<[UInt8], UndecryptableReason> {
        guard header.epoch == message.epoch, header.index == message.index else {
            return .failure(.authenticationFailed)
        }
        guard var record = members[header.sender], message.epoch <= record.epoch else {
            return .failure(.unknownEpoch)
        }
        let cipherSuite = suite.suite
        let position = MessagePosition(epoch: message.epoch, index: message.index)
        let aad = header.associatedData

        func open(_ key: MessageKey) -> [UInt8]? {
            try? cipherSuite.aeadOpen(key: key.key.bytes, nonce: key.nonce, aad: aad, ciphertext: message.ciphertext)
        }

        if position.epoch < record.epoch || position.index < record.nextIndex {
            // Behind the chain: only a skipped key can open it.
            guard let slot = record.skippedSlot(position) else {
                return .failure(position.epoch < record.epoch ? .epochExpired : .keyAlreadyUsed)
            }
            guard let plaintext = open(record.skipped[slot].key) else { return .failure(.authenticationFailed) }
            retire(record.skipped[slot].key.key)
            var keepsUsedKey = false
            #if DEBUG
            keepsUsedKey = PlantedDefects.isActive(.keepUsedMessageKey)
            #endif
            if !keepsUsedKey { record.skipped.remove(at: slot) }
            members[header.sender] = record
            return .success(plaintext)
        }

        // At or ahead of the chain in the current epoch.
        let skip = position.index - record.nextIndex
        guard position.index < UInt64.max, skip <= UInt64(configuration.maximumSkipPerMessage) else {
            return .failure(.tooFarAhead)
        }
        var chain = record.chain
        var newlySkipped: [SkippedKey] = []
        newlySkipped.reserveCapacity(Int(skip))
        var index = record.nextIndex
        var usedChains: [Bytes32] = []
        while index < position.index {
            let (key, next) = MessageRatchet.step(chain, suite: cipherSuite)
            newlySkipped.append(SkippedKey(position: MessagePosition(epoch: record.epoch, index: index), key: key))
            if retiredSecrets != nil { usedChains.append(chain) }
            chain = next
            index += 1
        }
        let (key, next) = MessageRatchet.step(chain, suite: cipherSuite)
        guard let plaintext = open(key) else { return .failure(.authenticationFailed) }
        if retiredSecrets != nil {
            // Every chain value from the old head to this message's, and the key just used.
            for used in usedChains { retire(used) }
            retire(chain)
            retire(key.key)
        }
        record.chain = next
        record.nextIndex = position.index + 1
        record.skipped.append(contentsOf: newlySkipped)
        #if DEBUG
        if PlantedDefects.isActive(.keepUsedMessageKey) { record.skipped.append(SkippedKey(position: position, key: key)) }
        #endif
        let evicted = record.evict(keepingAtMost: configuration.maximumSkippedKeysPerSender)
        for dropped in evicted { retire(dropped.key.key) }
        members[header.sender] = record
        return .success(plaintext)
    }

    /// Keeps the key of a message whose payload is gone (a pruned envelope delivered in order,
    /// §6.1): the chain is advanced past it as if it had been read, and its key goes into the
    /// bounded skipped-key store, so that a full copy arriving later still decrypts (once). A key
    /// already in the store stays. On failure (the same reasons as ``decrypt(_:header:)``, which
    /// cannot be checked by authentication here) nothing changes.
    public mutating func keepKey(for header: ApplicationHeader, envelope: Bytes32) -> Result<Void, UndecryptableReason> {
        guard var record = members[header.sender], header.epoch <= record.epoch else { return .failure(.unknownEpoch) }
        let position = MessagePosition(epoch: header.epoch, index: header.index)
        if position.epoch < record.epoch || position.index < record.nextIndex {
            guard let slot = record.skippedSlot(position) else {
                return .failure(position.epoch < record.epoch ? .epochExpired : .keyAlreadyUsed)
            }
            record.skipped[slot].envelope = envelope
            members[header.sender] = record
            return .success(())
        }
        let skip = position.index - record.nextIndex
        guard position.index < UInt64.max, skip <= UInt64(configuration.maximumSkipPerMessage) else {
            return .failure(.tooFarAhead)
        }
        let cipherSuite = suite.suite
        var chain = record.chain
        while record.nextIndex <= position.index {
            let (key, next) = MessageRatchet.step(chain, suite: cipherSuite)
            let here = MessagePosition(epoch: record.epoch, index: record.nextIndex)
            record.skipped.append(SkippedKey(position: here, key: key, envelope: here == position ? envelope : nil))
            retire(chain)
            chain = next
            record.nextIndex += 1
        }
        record.chain = chain
        let evicted = record.evict(keepingAtMost: configuration.maximumSkippedKeysPerSender)
        for dropped in evicted { retire(dropped.key.key) }
        members[header.sender] = record
        return .success(())
    }

    /// The envelope whose payload the key kept at `(sender, epoch, index)` waits for (a message
    /// delivered pruned), if any.
    public func keptKeyEnvelope(of sender: MemberID, epoch: UInt64, index: UInt64) -> Bytes32? {
        guard let record = members[sender], let slot = record.skippedSlot(MessagePosition(epoch: epoch, index: index)) else { return nil }
        return record.skipped[slot].envelope
    }

    /// The member's current epoch (nil if I hold no ratchet for it).
    public func currentEpoch(of member: MemberID) -> UInt64? {
        members[member]?.epoch
    }

    /// Number of skipped message keys held for `member`.
    public func skippedKeyCount(for member: MemberID) -> Int {
        members[member]?.skipped.count ?? 0
    }

    /// Drops everything about `member` (its chain and skipped keys), for a removed member.
    public mutating func forget(_ member: MemberID) {
        if let record = members[member] {
            retire(record.chain)
            for entry in record.skipped { retire(entry.key.key) }
        }
        members[member] = nil
    }
}

extension MemberRatchet {
    mutating func replaceChain(epoch: UInt64, chain: Bytes32) {
        self.epoch = epoch
        self.nextIndex = 0
        self.chain = chain
    }

    /// Evicts the oldest skipped keys (smallest positions) beyond `limit`, and returns them.
    @discardableResult
    mutating func evict(keepingAtMost limit: Int) -> [SkippedKey] {
        guard skipped.count > limit else { return [] }
        let evicted = Array(skipped[..<(skipped.count - limit)])
        skipped.removeFirst(skipped.count - limit)
        return evicted
    }
}

// MARK: - Encoding

/// ```
/// state   = version(u8 = 2) ‖ suite(u8) ‖ maximumSkippedKeysPerSender(varint) ‖ maximumSkipPerMessage(varint)
///           ‖ count(varint) ‖ member*          -- strictly ascending by member ID
/// member  = id(32) ‖ epoch(varint) ‖ nextIndex(varint) ‖ chain(32)
///           ‖ count(varint) ‖ skipped*         -- strictly ascending by (epoch, index), all < (epoch, nextIndex)
/// skipped = epoch(varint) ‖ index(varint) ‖ key(32) ‖ nonce(12) ‖ u8 0 | u8 1 ‖ envelope hash(32)
/// ```
extension MessagingState {
    static let minimumMemberBytes = 32 + 1 + 1 + 32 + 1
    static let skippedBytesAtLeast = 1 + 1 + 32 + 12 + 1

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt8(Self.encodingVersion)
        writer.write(suite)
        writer.writeVarint(configuration.maximumSkippedKeysPerSender)
        writer.writeVarint(configuration.maximumSkipPerMessage)
        let sorted = members.sorted { $0.key < $1.key }
        writer.writeVarint(sorted.count)
        for (id, record) in sorted {
            writer.write(id)
            writer.writeVarint(record.epoch)
            writer.writeVarint(record.nextIndex)
            writer.write(record.chain)
            writer.writeVarint(record.skipped.count)
            for entry in record.skipped {
                writer.writeVarint(entry.position.epoch)
                writer.writeVarint(entry.position.index)
                writer.write(entry.key.key)
                writer.writeFixed(entry.key.nonce)
                writer.writeOptional(entry.envelope)
            }
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> MessagingState {
        let version = try reader.readUInt8()
        guard version == encodingVersion else { throw .unsupportedVersion(version) }
        let suite = try reader.read(CipherSuiteID.self)
        let configuration = MessagingConfiguration(
            maximumSkippedKeysPerSender: try reader.readBoundedVarint(
                field: "maximum skipped keys per sender", limit: MessagingConfiguration.hardLimit),
            maximumSkipPerMessage: try reader.readBoundedVarint(
                field: "maximum skip per message", limit: MessagingConfiguration.hardLimit))
        var state = MessagingState(suite: suite, configuration: configuration)

        let memberCount = try reader.readBoundedVarint(field: "messaging members", limit: maximumMembers)
        guard memberCount <= reader.remaining / minimumMemberBytes else { throw .truncated }
        state.members.reserveCapacity(memberCount)
        var previousMember: MemberID?
        for _ in 0..<memberCount {
            let id = try reader.read(MemberID.self)
            if let previousMember, !(previousMember < id) { throw .invalidValue(field: "messaging members order") }
            previousMember = id
            let epoch = try reader.readVarint()
            let nextIndex = try reader.readVarint()
            let chain = try reader.read(Bytes32.self)
            let skippedCount = try reader.readBoundedVarint(
                field: "skipped message keys", limit: configuration.maximumSkippedKeysPerSender)
            guard skippedCount <= reader.remaining / skippedBytesAtLeast else { throw .truncated }
            var skipped: [SkippedKey] = []
            skipped.reserveCapacity(skippedCount)
            let head = MessagePosition(epoch: epoch, index: nextIndex)
            for _ in 0..<skippedCount {
                let position = MessagePosition(epoch: try reader.readVarint(), index: try reader.readVarint())
                guard position < head else { throw .invalidValue(field: "skipped key position") }
                if let last = skipped.last, !(last.position < position) {
                    throw .invalidValue(field: "skipped keys order")
                }
                let key = try reader.read(Bytes32.self)
                let nonce = try reader.readFixed(MessageRatchet.nonceLength)
                let envelope = try reader.readOptional(Bytes32.self, field: "skipped key envelope")
                skipped.append(SkippedKey(position: position, key: MessageKey(key: key, nonce: nonce), envelope: envelope))
            }
            state.members[id] = MemberRatchet(epoch: epoch, nextIndex: nextIndex, chain: chain, skipped: skipped)
        }
        return state
    }
}

extension MessagingState: RedactedDescription {}
extension MemberRatchet: RedactedDescription {}
extension SkippedKey: RedactedDescription {}
