public import DCGKAEncoding
internal import DCGKACrypto
internal import TwoPartyMessaging
internal import Membership

extension DCGKAState: WireCodable {
    public static let maximumPeers = MembershipState.maxMembers
    /// Per member at most ``maximumMemberSecretsPerMember``, for at most ``maximumPeers`` members.
    public static let maximumMemberSecrets = maximumPeers * maximumMemberSecretsPerMember

    /// Canonical: maps are written sorted by key, so equal states encode to equal bytes.
    public func encode(to writer: inout WireWriter) {
        writer.write(me)
        writer.write(groupID)
        writer.write(suite)
        writer.write(history)
        writer.writeOptional(nextSeed)
        let channels = twoParty.sorted { $0.key < $1.key }
        writer.writeVarint(channels.count)
        for (id, channel) in channels {
            writer.write(id)
            writer.write(channel)
        }
        let secrets = memberSecrets.sorted { $0.key < $1.key }
        writer.writeVarint(secrets.count)
        for (key, secret) in secrets {
            writer.write(key.operation)
            writer.write(key.member)
            writer.write(secret)
        }
        let ratchetStates = ratchets.sorted { $0.key < $1.key }
        writer.writeVarint(ratchetStates.count)
        for (id, state) in ratchetStates {
            writer.write(id)
            writer.write(state)
        }
        writer.writeBool(myRatchetReaders != nil)
        if let readers = myRatchetReaders { writer.writeArray(readers.sorted()) }
        writer.writeBool(myEpochReaders != nil)
        if let readers = myEpochReaders { writer.writeArray(readers.sorted()) }
        writer.writeArray(channelsOnMyPrekey.sorted())
        writer.writeArray(lostRatchets.sorted())
        writer.writeArray(lostSeeds.sorted())
        writer.writeVarint(resync.generation)
        writer.writeVarint(resync.requests.count)
        for request in resync.requests {
            writer.writeVarint(request.generation)
            writer.writeVarint(request.seq)
            writer.writeArray(request.asked.sorted())
            writer.writeArray(request.awaiting.sorted())
            writer.write(request.key)
        }
        let answered = resync.answered.sorted { $0.key < $1.key }
        writer.writeVarint(answered.count)
        for (id, generation) in answered {
            writer.write(id)
            writer.writeVarint(generation)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> DCGKAState {
        var state = DCGKAState(me: try reader.read(), groupID: try reader.read(), suite: try reader.read())
        state.history = try reader.read()
        state.nextSeed = try reader.readOptional(field: "next seed")
        let channelCount = try reader.readBoundedVarint(field: "2SM channels", limit: maximumPeers)
        var lastPeer: MemberID?
        for _ in 0..<channelCount {
            let id = try reader.read(MemberID.self)
            if let lastPeer, !(lastPeer < id) { throw .invalidValue(field: "2SM channel order") }
            lastPeer = id
            state.twoParty[id] = try reader.read(TwoPartyState.self)
        }
        let secretCount = try reader.readBoundedVarint(field: "member secrets", limit: maximumMemberSecrets)
        var lastKey: MemberSecretKey?
        for _ in 0..<secretCount {
            let key = MemberSecretKey(operation: try reader.read(), member: try reader.read())
            if let lastKey, !(lastKey < key) { throw .invalidValue(field: "member secret order") }
            lastKey = key
            state.memberSecrets[key] = try reader.read(Bytes32.self)
            state.pendingSecretCount[key.member, default: 0] += 1
            guard state.pendingSecretCount[key.member]! <= maximumMemberSecretsPerMember else {
                throw .invalidValue(field: "member secrets per member")
            }
        }
        let ratchetCount = try reader.readBoundedVarint(field: "ratchets", limit: maximumPeers)
        var lastRatchet: MemberID?
        for _ in 0..<ratchetCount {
            let id = try reader.read(MemberID.self)
            if let lastRatchet, !(lastRatchet < id) { throw .invalidValue(field: "ratchet order") }
            lastRatchet = id
            state.ratchets[id] = try reader.read(Bytes32.self)
        }
        if try reader.readBool(field: "ratchet readers present") {
            let readers = try reader.readArray(MemberID.self, field: "ratchet readers", limit: maximumPeers)
            for (a, b) in zip(readers, readers.dropFirst()) where !(a < b) {
                throw .invalidValue(field: "ratchet reader order")
            }
            state.myRatchetReaders = Set(readers)
        }
        if try reader.readBool(field: "epoch readers present") {
            let readers = try reader.readArray(MemberID.self, field: "epoch readers", limit: maximumPeers)
            for (a, b) in zip(readers, readers.dropFirst()) where !(a < b) {
                throw .invalidValue(field: "epoch reader order")
            }
            state.myEpochReaders = Set(readers)
        }
        let onPrekey = try reader.readArray(MemberID.self, field: "channels on my prekey", limit: maximumPeers)
        for (a, b) in zip(onPrekey, onPrekey.dropFirst()) where !(a < b) {
            throw .invalidValue(field: "channels on my prekey order")
        }
        // Only a channel that exists can rest on my prekey.
        guard onPrekey.allSatisfy({ state.twoParty[$0] != nil }) else { throw .invalidValue(field: "channels on my prekey") }
        state.channelsOnMyPrekey = Set(onPrekey)
        let lost = try reader.readArray(MemberID.self, field: "lost ratchets", limit: maximumPeers)
        for (a, b) in zip(lost, lost.dropFirst()) where !(a < b) { throw .invalidValue(field: "lost ratchets order") }
        state.lostRatchets = Set(lost)
        let seeds = try reader.readArray(OperationID.self, field: "lost seeds", limit: maximumLostSeeds)
        for (a, b) in zip(seeds, seeds.dropFirst()) where !(a < b) { throw .invalidValue(field: "lost seeds order") }
        state.lostSeeds = Set(seeds)
        state.resync.generation = try reader.readVarint()
        let requestCount = try reader.readBoundedVarint(field: "resync requests", limit: ResyncState.maximumRequests)
        var previous: (generation: UInt64, seq: UInt64)?
        for _ in 0..<requestCount {
            let generation = try reader.readVarint()
            let seq = try reader.readVarint()
            guard generation >= 1, generation <= state.resync.generation, seq >= 1,
                  previous.map({ $0.generation < generation && $0.seq < seq }) ?? true
            else { throw .invalidValue(field: "resync request") }
            previous = (generation, seq)
            let asked = try reader.readArray(MemberID.self, field: "resync asked", limit: maximumPeers)
            for (a, b) in zip(asked, asked.dropFirst()) where !(a < b) { throw .invalidValue(field: "resync asked order") }
            let awaiting = try reader.readArray(MemberID.self, field: "resync awaiting", limit: maximumPeers)
            guard !awaiting.isEmpty, Set(awaiting).isSubset(of: Set(asked)) else { throw .invalidValue(field: "resync awaiting") }
            for (a, b) in zip(awaiting, awaiting.dropFirst()) where !(a < b) { throw .invalidValue(field: "resync awaiting order") }
            let key = try reader.read(PKESecretKey.self)
            state.resync.requests.append(ResyncState.Request(
                generation: generation, seq: seq, asked: Set(asked), awaiting: Set(awaiting), key: key))
        }
        let answeredCount = try reader.readBoundedVarint(field: "resync answered", limit: maximumPeers)
        var lastAnswered: MemberID?
        for _ in 0..<answeredCount {
            let id = try reader.read(MemberID.self)
            if let lastAnswered, !(lastAnswered < id) { throw .invalidValue(field: "resync answered order") }
            lastAnswered = id
            let generation = try reader.readVarint()
            guard generation >= 1 else { throw .invalidValue(field: "resync answered generation") }
            state.resync.answered[id] = generation
        }
        return state
    }
}
