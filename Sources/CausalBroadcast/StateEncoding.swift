public import DCGKAEncoding
internal import DCGKACrypto

/// Canonical encoding of a ``BroadcastState`` (§8), for storage:
///
/// ```
/// version        u8 = 5 (only this one is read: decoding is canonical)
/// groupID        32
/// suite          u8
/// me             32
/// configuration  varint maximumBufferedEnvelopes, varint maximumBufferedPayloadBytes,
///                varint recentHashesPerSender (≥ 1), varint maximumBufferedEnvelopesPerSender,
///                varint maximumBufferedPayloadBytesPerSender
/// senders        varint n, then n in strictly increasing ID order:
///   id           32
///   delivered    varint
///   skipped      varint ≤ delivered
///   recent       varint k (≤ recentHashesPerSender; ≥ 1 iff delivered > 0), then k × (seq varint,
///                hash 32) strictly increasing, within (delivered − window, delivered], the last
///                one at delivered
/// acknowledgeable varint m, then m in strictly increasing hash order: hash 32, varint sender
///                index into `senders`, varint seq (1 ... that sender's delivered)
/// cuts           varint count, then in strictly increasing ID order: ID 32, seq varint ≥ 1
/// strangers      varint count (≤ maximumStrangersPastCut; 0 when there are no cuts), then IDs 32
///                strictly increasing, never mine: senders refused as unknown while a cut was held
/// buffered       varint count (≤ maximumBufferedEnvelopes + 2^20), then canonical envelopes, each
///                length-prefixed, strictly increasing by (sender, seq)
/// inFlight       varint count, then canonical envelopes, length-prefixed, strictly increasing by sender
/// ```
///
/// A sender appears in `senders` only when it has delivered something; senders that only have
/// buffered envelopes are rebuilt from those. Decoding checks every invariant the encoder
/// guarantees, so decode-then-encode gives the same bytes.
extension BroadcastState: WireCodable {
    static let encodingVersion: UInt8 = 5
    static let maximumSenders = 1 << 20
    static let maximumAcknowledgeable = 1 << 26

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt8(Self.encodingVersion)
        groupID.encode(to: &writer)
        suite.encode(to: &writer)
        me.encode(to: &writer)
        writer.writeVarint(configuration.maximumBufferedEnvelopes)
        writer.writeVarint(configuration.maximumBufferedPayloadBytes)
        writer.writeVarint(configuration.recentHashesPerSender)
        writer.writeVarint(configuration.maximumBufferedEnvelopesPerSender)
        writer.writeVarint(configuration.maximumBufferedPayloadBytesPerSender)

        let table = senders.filter { $0.value.delivered > 0 }.keys.sorted()
        var index: [MemberID: Int] = [:]
        writer.writeVarint(table.count)
        for (i, id) in table.enumerated() {
            index[id] = i
            let state = senders[id]!
            id.encode(to: &writer)
            writer.writeVarint(state.delivered)
            writer.writeVarint(state.skippedThrough)
            let recent = state.recent.sorted { $0.key < $1.key }
            writer.writeVarint(recent.count)
            for (seq, hash) in recent {
                writer.writeVarint(seq)
                hash.encode(to: &writer)
            }
        }

        writer.writeVarint(acknowledgeable.count)
        for (hash, op) in acknowledgeable.sorted(by: { $0.key < $1.key }) {
            hash.encode(to: &writer)
            writer.writeVarint(index[op.sender] ?? 0)
            writer.writeVarint(op.seq)
        }

        let cutList = cuts.sorted { $0.key < $1.key }
        writer.writeVarint(cutList.count)
        for (id, seq) in cutList {
            id.encode(to: &writer)
            writer.writeVarint(seq)
        }

        writer.writeArray(strangersPastCut.sorted())  // only ever filled while a cut is held

        let buffered = buffer.values.sorted { $0.operationID < $1.operationID }
        writer.writeVarint(buffered.count)
        for envelope in buffered { writer.writeLengthPrefixed(envelope.canonicalBytes) }

        let inFlight = senders.keys.sorted().compactMap { senders[$0]!.inFlight }
        writer.writeVarint(inFlight.count)
        for envelope in inFlight { writer.writeLengthPrefixed(envelope.canonicalBytes) }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> BroadcastState {
        let version = try reader.readUInt8()
        guard version == encodingVersion else { throw .unsupportedVersion(version) }
        let groupID = try GroupID.decode(from: &reader)
        let suite = try CipherSuiteID.decode(from: &reader)
        let me = try MemberID.decode(from: &reader)
        let limit = BroadcastConfiguration.limit
        let maxEnvelopes = try reader.readBoundedVarint(field: "broadcast.maxEnvelopes", limit: limit)
        let maxBytes = try reader.readBoundedVarint(field: "broadcast.maxBytes", limit: BroadcastConfiguration.byteLimit)
        let window = try reader.readBoundedVarint(field: "broadcast.recentHashes", limit: limit)
        guard window >= 1 else { throw .invalidValue(field: "broadcast.recentHashes") }
        let perSender = try reader.readBoundedVarint(field: "broadcast.maxEnvelopesPerSender", limit: limit)
        let perSenderBytes = try reader.readBoundedVarint(field: "broadcast.maxBytesPerSender", limit: BroadcastConfiguration.byteLimit)
        let configuration = BroadcastConfiguration(
            maximumBufferedEnvelopes: maxEnvelopes, maximumBufferedPayloadBytes: maxBytes,
            recentHashesPerSender: window, maximumBufferedEnvelopesPerSender: perSender,
            maximumBufferedPayloadBytesPerSender: perSenderBytes)
        var state = BroadcastState(groupID: groupID, suite: suite, me: me, configuration: configuration)

        let senderCount = try reader.readBoundedVarint(field: "broadcast.senders", limit: maximumSenders)
        guard senderCount <= reader.remaining / 68 else { throw .truncated }
        var table: [MemberID] = []
        table.reserveCapacity(senderCount)
        for _ in 0..<senderCount {
            let id = try MemberID.decode(from: &reader)
            if let last = table.last, !(last < id) { throw .invalidValue(field: "broadcast.senders order") }
            table.append(id)
            var sender = SenderState()
            sender.delivered = try reader.readVarint()
            guard sender.delivered >= 1, sender.delivered <= Envelope.maximumSeq else {
                throw .invalidValue(field: "broadcast.delivered")
            }
            sender.skippedThrough = try reader.readVarint()
            guard sender.skippedThrough <= sender.delivered else { throw .invalidValue(field: "broadcast.skipped") }
            let recentCount = try reader.readBoundedVarint(field: "broadcast.recent", limit: window)
            guard recentCount >= 1 else { throw .invalidValue(field: "broadcast.recent") }
            guard recentCount <= reader.remaining / 33 else { throw .truncated }
            let lowest = sender.delivered > UInt64(window) ? sender.delivered - UInt64(window) + 1 : 1
            var previous: UInt64 = 0
            for _ in 0..<recentCount {
                let seq = try reader.readVarint()
                guard seq > previous, seq >= lowest, seq <= sender.delivered else {
                    throw .invalidValue(field: "broadcast.recent seq")
                }
                previous = seq
                sender.recent[seq] = try Bytes32.decode(from: &reader)
            }
            guard previous == sender.delivered else { throw .invalidValue(field: "broadcast.recent head") }
            state.senders[id] = sender
        }

        let ackCount = try reader.readBoundedVarint(field: "broadcast.acknowledgeable", limit: maximumAcknowledgeable)
        guard ackCount <= reader.remaining / 34 else { throw .truncated }
        state.acknowledgeable.reserveCapacity(ackCount)
        var previousHash: Bytes32?
        for _ in 0..<ackCount {
            let hash = try Bytes32.decode(from: &reader)
            if let previousHash, !(previousHash < hash) { throw .invalidValue(field: "broadcast.acknowledgeable order") }
            previousHash = hash
            let i = try reader.readBoundedVarint(field: "broadcast.acknowledgeable sender", limit: maximumSenders)
            guard i < table.count else { throw .invalidValue(field: "broadcast.acknowledgeable sender") }
            let seq = try reader.readVarint()
            guard seq >= 1, seq <= state.senders[table[i]]!.delivered else {
                throw .invalidValue(field: "broadcast.acknowledgeable seq")
            }
            state.acknowledgeable[hash] = OperationID(sender: table[i], seq: seq)
        }

        do {
            let cutCount = try reader.readBoundedVarint(field: "broadcast.cuts", limit: maximumSenders)
            guard cutCount <= reader.remaining / 33 else { throw .truncated }
            var previous: MemberID?
            for _ in 0..<cutCount {
                let id = try MemberID.decode(from: &reader)
                if let previous, !(previous < id) { throw .invalidValue(field: "broadcast.cuts order") }
                previous = id
                let seq = try reader.readVarint()
                guard seq >= 1, seq <= Envelope.maximumSeq, id != me else { throw .invalidValue(field: "broadcast.cuts seq") }
                state.cuts[id] = seq
            }
        }

        do {
            let strangerCount = try reader.readBoundedVarint(field: "broadcast.strangers", limit: maximumStrangersPastCut)
            guard strangerCount <= reader.remaining / 32 else { throw .truncated }
            guard strangerCount == 0 || !state.cuts.isEmpty else { throw .invalidValue(field: "broadcast.strangers without a cut") }
            var previous: MemberID?
            for _ in 0..<strangerCount {
                let id = try MemberID.decode(from: &reader)
                if let previous, !(previous < id) { throw .invalidValue(field: "broadcast.strangers order") }
                guard id != me else { throw .invalidValue(field: "broadcast.strangers") }
                previous = id
                state.strangersPastCut.insert(id)
            }
        }

        // The limit allows the one "next" envelope per sender that receive accepts over the limit.
        let bufferedCount = try reader.readBoundedVarint(
            field: "broadcast.buffered", limit: maxEnvelopes + maximumSenders)
        guard bufferedCount <= reader.remaining / 100 else { throw .truncated }
        var previousOp: OperationID?
        for _ in 0..<bufferedCount {
            let envelope = try decodeEnvelope(&reader, state: state)
            if let previousOp, !(previousOp < envelope.operationID) { throw .invalidValue(field: "broadcast.buffered order") }
            if let cut = state.cuts[envelope.sender], envelope.seq >= cut { throw .invalidValue(field: "broadcast.buffered past a cut") }
            previousOp = envelope.operationID
            state.buffer[envelope.hash] = envelope
            state.bufferedPayloadBytes += envelope.payloadCount
            state.senders[envelope.sender, default: SenderState()].pending[envelope.seq] = envelope.hash
            state.senders[envelope.sender, default: SenderState()].pendingBytes += envelope.payloadCount
        }

        let inFlightCount = try reader.readBoundedVarint(field: "broadcast.inFlight", limit: maximumSenders)
        guard inFlightCount <= reader.remaining / 100 else { throw .truncated }
        var previousSender: MemberID?
        for _ in 0..<inFlightCount {
            let envelope = try decodeEnvelope(&reader, state: state)
            if let previousSender, !(previousSender < envelope.sender) { throw .invalidValue(field: "broadcast.inFlight order") }
            previousSender = envelope.sender
            var sender = state.senders[envelope.sender] ?? SenderState()
            guard envelope.seq == sender.delivered + 1, envelope.prev == sender.head,
                  sender.pending[envelope.seq] == nil else {
                throw .invalidValue(field: "broadcast.inFlight position")
            }
            sender.inFlight = envelope
            state.senders[envelope.sender] = sender
        }

        for sender in state.senders.keys { state.refreshLine(sender) }
        return state
    }

    private static func decodeEnvelope(_ reader: inout WireReader, state: BroadcastState) throws(WireError) -> Envelope {
        let bytes = try reader.readLengthPrefixed(field: "broadcast.envelope", limit: Envelope.maximumCanonicalBytes)
        let envelope = try Envelope(canonical: bytes)
        guard envelope.groupID == state.groupID, envelope.suite == state.suite, envelope.sender != state.me,
              envelope.seq > state.deliveredSeq(of: envelope.sender)
        else { throw .invalidValue(field: "broadcast.envelope") }
        return envelope
    }
}
