public import DCGKACrypto
public import DCGKAEncoding
import CausalBroadcast
public import DCGKAGroup

/// The operations the paper measures (§ evaluation): the set-up of a fresh group and one operation on it.
public enum BenchOperation: String, CaseIterable, Sendable, Comparable {
    case create, update, add, remove, message

    public static func < (lhs: BenchOperation, rhs: BenchOperation) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// What one run measured. CPU times are in milliseconds of thread CPU time.
public struct BenchSample: Sendable {
    public var operation: BenchOperation
    public var groupSize: Int
    /// The operation's sender, processing what came back (acknowledgments, replies) only:
    /// the prototype's convention (reference README quirk 1).
    public var senderCPU: Double
    /// The sender including generating the operation.
    public var senderTotalCPU: Double
    /// Every other member of the group before the operation, one value each. In a remove the
    /// removed member is one of them (quirk 2); in an add the new member is not (quirk 3).
    public var recipientCPU: [Double]
    /// Add only: the new member (joining from the add and processing every add-ack).
    public var addedMemberCPU: Double?
    /// Wire bytes handed to the network: every envelope once (a broadcast counts once).
    public var bytes: Int
    /// Envelopes handed to the network.
    public var envelopes: Int
    /// Encoded persistent state of one non-sender member after the operation (bytes).
    public var memberStateBytes: Int
}

/// Why a benchmark run did not do what it should (the protocol rejected or failed something).
public struct BenchFailure: Error, CustomStringConvertible {
    public var description: String
}

/// One in-process group of `n` members following the prototype's method: all members in one
/// process and on one thread, envelopes passed as wire bytes, every envelope delivered to every
/// other member that holds the group (FIFO, which is a causal order here), every acknowledgment
/// processed and every signature checked by `Group.receive`'s default verification.
struct BenchWorld {
    struct Member {
        let identity: IdentityKey
        var prekeys: PrekeyStore
        let bundle: KeyBundle
        var group: Group?
        /// Thread CPU time spent in this member's calls since the last reset (ns).
        var cpu: UInt64 = 0
        var messagesRead = 0
    }

    struct InFlight {
        var from: Int
        var wire: [UInt8]
    }

    static let now: UInt64 = 1_800_000_000

    var members: [Member] = []
    var rng: SeededRandom
    var queue: [InFlight] = []
    var head = 0
    /// Members without a group that join from the next invitation they receive.
    var invited: Set<Int> = []
    var bytes = 0
    var envelopes = 0
    var groupID: GroupID?
    var problems: [String] = []
    /// Every wire handed off, when `keepsLog` is set (fixtures only).
    var handedOff: [[UInt8]] = []
    var keepsLog = false

    /// Makes `count` members with identities, prekeys and bundles (not timed: the prototype makes
    /// prekeys before timing starts).
    init(memberCount count: Int, seed: UInt64) {
        rng = SeededRandom(seed: seed)
        members.reserveCapacity(count)
        for _ in 0..<count {
            let identity = IdentityKey.generate(using: &rng)
            var prekeys = PrekeyStore()
            let bundle = prekeys.generate(identity: identity, notAfter: Self.now + 86_400, using: &rng)
            members.append(Member(identity: identity, prekeys: prekeys, bundle: bundle))
        }
    }

    mutating func resetMeters() {
        for i in members.indices { members[i].cpu = 0 }
        bytes = 0
        envelopes = 0
    }

    /// Hands an envelope to the network: its wire bytes, counted once.
    mutating func handOff(_ wire: [UInt8], from sender: Int) {
        bytes += wire.count
        envelopes += 1
        queue.append(InFlight(from: sender, wire: wire))
        if keepsLog { handedOff.append(wire) }
    }

    /// Creates the group: member 0 with members 1..<n. Returns the creator's generation time (ns).
    mutating func create(groupSize n: Int) throws -> UInt64 {
        var generation: UInt64 = 0
        let creator = members[0]
        let others = members[1..<n].map(\.bundle)
        let (group, wire) = try measureCPU(into: &generation) { () throws -> (Group, [UInt8]) in
            let (group, envelope) = try Group.create(
                identity: creator.identity, ownBundle: creator.bundle, members: others, prekeys: creator.prekeys,
                now: Self.now, using: &rng)
            return (group, envelope.wireBytes)
        }
        members[0].group = group
        groupID = group.groupID
        invited = Set(1..<n)
        handOff(wire, from: 0)
        return generation
    }

    /// Runs one local operation of member `i` (timed as its generation) and hands off its envelope.
    mutating func operate(
        _ i: Int, _ body: (inout Group, PrekeyStore, inout SeededRandom) throws -> Envelope
    ) throws -> UInt64 {
        var generation: UInt64 = 0
        var group = members[i].group!
        members[i].group = nil
        let prekeys = members[i].prekeys
        let wire = try measureCPU(into: &generation) { () throws -> [UInt8] in
            try body(&group, prekeys, &rng).wireBytes
        }
        members[i].group = group
        handOff(wire, from: i)
        return generation
    }

    /// Delivers everything in flight, and everything that causes, until nothing is left.
    mutating func settle() throws {
        guard let groupID else { throw BenchFailure(description: "no group") }
        while head < queue.count {
            let item = queue[head]
            head += 1
            for i in members.indices where i != item.from {
                if members[i].group != nil {
                    try receive(item.wire, at: i, groupID: groupID)
                } else if invited.contains(i) {
                    try join(item.wire, at: i, groupID: groupID)
                }
            }
        }
        queue.removeAll(keepingCapacity: true)
        head = 0
    }

    mutating func receive(_ wire: [UInt8], at i: Int, groupID: GroupID) throws {
        var group = members[i].group!
        members[i].group = nil
        let prekeys = members[i].prekeys
        var cpu: UInt64 = 0
        let (output, replies) = try measureCPU(into: &cpu) { () throws -> (GroupOutput, [[UInt8]]) in
            let envelope = try Envelope(wire: wire, groupID: groupID)
            let output = group.receive(envelope, prekeys: prekeys, using: &rng)
            return (output, output.envelopes.map(\.wireBytes))
        }
        members[i].cpu &+= cpu
        members[i].group = group
        check(output.events, member: i)
        for reply in replies { handOff(reply, from: i) }
    }

    mutating func join(_ wire: [UInt8], at i: Int, groupID: GroupID) throws {
        let member = members[i]
        var cpu: UInt64 = 0
        let (group, output, replies) = try measureCPU(into: &cpu) { () throws -> (Group, GroupOutput, [[UInt8]]) in
            let envelope = try Envelope(wire: wire, groupID: groupID)
            let (group, output) = try Group.join(identity: member.identity, invitation: envelope, prekeys: member.prekeys, using: &rng)
            return (group, output, output.envelopes.map(\.wireBytes))
        }
        members[i].cpu &+= cpu
        members[i].group = group
        invited.remove(i)
        check(output.events, member: i)
        for reply in replies { handOff(reply, from: i) }
    }

    mutating func check(_ events: [GroupEvent], member i: Int) {
        for event in events {
            switch event {
            case .message: members[i].messagesRead += 1
            case .rejected, .processingFailed, .equivocation, .undecryptable:
                problems.append("member \(i): \(event)")
            default: break
            }
        }
    }

    func stateBytes(of i: Int) -> Int { members[i].group.map { $0.wireBytes.count } ?? 0 }
}

/// Runs the prototype's method for one group size and operation.
public enum GroupBench {
    /// The application message's plaintext: 32 bytes, as in the paper.
    public static let messagePlaintext: [UInt8] = Array("0123456789ABCDEF0123456789ABCDEF".utf8)

    /// One run: a fresh group of `n` (its set-up is the create sample) and, unless `operation` is
    /// `.create`, the operation by the creator and everything it causes.
    /// Returns the create sample and the operation's sample (nil for `.create`).
    public static func run(
        groupSize n: Int, operation: BenchOperation, seed: UInt64
    ) throws -> (create: BenchSample, operation: BenchSample?) {
        precondition(n >= 3, "group size must be at least 3")
        var world = BenchWorld(memberCount: operation == .add ? n + 1 : n, seed: seed)

        // Set-up: member 0 creates the group with members 1..<n; everyone joins and acknowledges.
        let createGeneration = try world.create(groupSize: n)
        try world.settle()
        try requireNoProblems(world, "create", n)
        let create = BenchSample(
            operation: .create, groupSize: n,
            senderCPU: ms(world.members[0].cpu), senderTotalCPU: ms(world.members[0].cpu + createGeneration),
            recipientCPU: (1..<n).map { ms(world.members[$0].cpu) }, addedMemberCPU: nil,
            bytes: world.bytes, envelopes: world.envelopes, memberStateBytes: world.stateBytes(of: 1))
        guard operation != .create else { return (create, nil) }

        world.resetMeters()
        let generation: UInt64
        switch operation {
        case .create:
            fatalError("handled above")
        case .update:
            generation = try world.operate(0) { group, prekeys, rng in try group.update(prekeys: prekeys, using: &rng) }
        case .remove:
            let removed = world.members[1].identity.id
            generation = try world.operate(0) { group, prekeys, rng in try group.remove(removed, prekeys: prekeys, using: &rng) }
        case .add:
            let bundle = world.members[n].bundle
            world.invited = [n]
            generation = try world.operate(0) { group, prekeys, rng in
                let envelopes = try group.add(bundle, prekeys: prekeys, now: BenchWorld.now, using: &rng)
                guard envelopes.count == 1 else { throw BenchFailure(description: "add, n=\(n): an unexpected refresh update") }
                return envelopes[0]
            }
        case .message:
            generation = try world.operate(0) { group, _, _ in try group.send(messagePlaintext, now: BenchWorld.now) }
        }
        try world.settle()
        try requireNoProblems(world, operation.rawValue, n)
        if operation == .message {
            for i in 1..<n where world.members[i].messagesRead != 1 {
                throw BenchFailure(description: "message, n=\(n): member \(i) read \(world.members[i].messagesRead) messages")
            }
        }
        if operation == .add, world.members[n].group?.isMember != true {
            throw BenchFailure(description: "add, n=\(n): the new member did not join")
        }
        let expected = world.members[0].group!.members
        for i in 0..<world.members.count where operation != .remove || i != 1 {
            guard let group = world.members[i].group, group.members == expected else {
                throw BenchFailure(description: "\(operation), n=\(n): member \(i) disagrees on the membership")
            }
        }
        let sample = BenchSample(
            operation: operation, groupSize: n,
            senderCPU: ms(world.members[0].cpu), senderTotalCPU: ms(world.members[0].cpu + generation),
            recipientCPU: (1..<n).map { ms(world.members[$0].cpu) },
            addedMemberCPU: operation == .add ? ms(world.members[n].cpu) : nil,
            bytes: world.bytes, envelopes: world.envelopes, memberStateBytes: world.stateBytes(of: 2))
        return (create, sample)
    }

    static func requireNoProblems(_ world: BenchWorld, _ what: String, _ n: Int) throws {
        if let first = world.problems.first {
            throw BenchFailure(description: "\(what), n=\(n): \(world.problems.count) problem(s), first: \(first)")
        }
    }

    static func ms(_ ns: UInt64) -> Double { Double(ns) / 1_000_000 }
}

/// A settled group for micro-benchmarks: every member's state after the create and all its acks.
public struct BenchFixture: Sendable {
    public var groups: [Group]
    public var prekeys: [PrekeyStore]
    public var groupID: GroupID
    /// Wire bytes of every envelope of the set-up: the create, then the acks.
    public var setupWires: [[UInt8]]
    /// A bundle of a member who is not in the group yet (to add).
    public var outsiderBundle: KeyBundle

    public static let now = BenchWorld.now

    /// A group of `n` created by member 0, settled (not timed).
    public init(groupSize n: Int, seed: UInt64 = 1) throws {
        var world = BenchWorld(memberCount: n + 1, seed: seed)
        world.keepsLog = true
        _ = try world.create(groupSize: n)
        try world.settle()
        try GroupBench.requireNoProblems(world, "fixture", n)
        groups = world.members[0..<n].map { $0.group! }
        prekeys = world.members[0..<n].map(\.prekeys)
        groupID = world.groupID!
        setupWires = world.handedOff
        outsiderBundle = world.members[n].bundle
    }
}
