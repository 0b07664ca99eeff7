import DCGKAEncoding
import Membership
import Testing

/// A simulated group of replicas, each with its own history, exchanging envelopes in the relaxed
/// order of §6 (each sender's envelopes in order; an acknowledgment after what it acknowledges).
/// Every replica acknowledges each membership operation it processes, an added member starts from
/// its adder's state (merge + recordWelcome) and skips what that state already covers, and every
/// envelope remembers its sender's `members()` at send time so receivers can check
/// `members(asSeenBy:atSeq:)` against it.
struct GroupSimulation {
    enum Body {
        case op(MembershipOperation)
        case ack(OperationID)
        case welcomeAck(OperationID)
    }

    struct Welcome {
        var state: MembershipState
        var shadow: MembershipState?
        /// How many envelopes of each sender the adder had processed, the add included.
        var frontier: [Int]
    }

    struct Envelope {
        var id: OperationID
        var body: Body
        var welcome: Welcome?
        var senderView: Set<MemberID>
    }

    /// A class so the delivery scan does not copy replicas (the debug build would).
    final class Replica {
        let id: MemberID
        var state = MembershipState()
        /// With folding: the same history, never folded, as the reference.
        var shadow: MembershipState?
        var seq: UInt64 = 0
        var joined = false
        var cursor: [Int]
        init(id: MemberID, cursor: [Int]) { self.id = id; self.cursor = cursor }
    }

    var rng: SplitMix64
    var replicas: [Replica]
    var logs: [[Envelope]]
    var problems: [String] = []
    /// Adds (sender, log position, target) whose target had not joined when they were sent.
    var pendingAdds: [(Int, Int, Int)] = []
    let seed: UInt64
    /// Percentage of processing steps that are also checked against the oracle.
    var oraclePercent = 5
    /// Replicas fold settled operations and are checked against an unfolded shadow.
    let folding: Bool
    var foldedOperations = 0

    init(seed: UInt64, size: Int, folding: Bool = false) {
        self.seed = seed
        self.folding = folding
        rng = SplitMix64(seed: seed)
        replicas = (0..<size).map { Replica(id: member(1000 + $0), cursor: Array(repeating: 0, count: size)) }
        for replica in replicas {
            replica.state.foldsSettledOperations = folding
            if folding {
                replica.shadow = MembershipState()
                replica.shadow!.foldsSettledOperations = false
            }
        }
        logs = Array(repeating: [], count: size)
        var initial: [Int] = []
        for i in 1..<size where rng.percent(50) { initial.append(i) }
        // Random order: the create's list order must not matter.
        for i in initial.indices.reversed() { initial.swapAt(i, rng.below(i + 1)) }
        replicas[0].joined = true
        for i in initial { replicas[i].joined = true }
        initiate(0, .create(members: initial.map { replicas[$0].id }))
    }

    mutating func problem(_ text: String) {
        if problems.count < 5 { problems.append("seed \(seed): \(text)") }
    }

    mutating func append(_ r: Int, _ body: Body, welcomeAfter: Bool = false) {
        let id = OperationID(sender: replicas[r].id, seq: replicas[r].seq)
        logs[r].append(Envelope(id: id, body: body, welcome: nil, senderView: replicas[r].state.members()))
        replicas[r].cursor[r] = logs[r].count
        if welcomeAfter {
            logs[r][logs[r].count - 1].welcome = Welcome(state: replicas[r].state, shadow: replicas[r].shadow, frontier: replicas[r].cursor)
        }
    }

    mutating func initiate(_ x: Int, _ kind: MembershipOperationKind) {
        replicas[x].seq += 1
        let op = MembershipOperation(id: OperationID(sender: replicas[x].id, seq: replicas[x].seq), kind: kind)
        do {
            try replicas[x].state.apply(op)
            try replicas[x].shadow?.apply(op)
        } catch { problem("apply own \(op): \(error)") }
        fold(x)
        if case .add(let target) = kind {
            append(x, .op(op), welcomeAfter: true)
            if let t = replicas.firstIndex(where: { $0.id == target }), !replicas[t].joined {
                pendingAdds.append((x, logs[x].count - 1, t))
            }
        } else {
            append(x, .op(op))
        }
    }

    /// A random add or remove by a replica that considers itself a member.
    mutating func initiateRandom() -> Bool {
        let eligible = replicas.indices.filter {
            replicas[$0].joined && replicas[$0].state.members().contains(replicas[$0].id)
        }
        guard !eligible.isEmpty else { return false }
        let x = rng.pick(eligible)
        let view = replicas[x].state.members()
        let outsiders = replicas.indices.filter { $0 != x && !view.contains(replicas[$0].id) }
        let insiders = replicas.indices.filter { $0 != x && view.contains(replicas[$0].id) }
        if !outsiders.isEmpty && (insiders.isEmpty || rng.percent(55)) {
            initiate(x, .add(replicas[rng.pick(outsiders)].id))
        } else if !insiders.isEmpty {
            initiate(x, .remove(replicas[rng.pick(insiders)].id))
        }
        return true
    }

    enum Delivery { case next(r: Int, x: Int), welcome(r: Int, x: Int, position: Int) }

    func isDeliverable(_ r: Int, _ x: Int) -> Bool {
        guard x != r, replicas[r].joined else { return false }
        let position = replicas[r].cursor[x]
        guard position < logs[x].count else { return false }
        switch logs[x][position].body {
        case .op: return true
        case .ack(let o), .welcomeAck(let o): return replicas[r].state.contains(o)
        }
    }

    /// A random possible delivery: a few random tries first (cheap), then a full scan.
    mutating func randomDelivery() -> Delivery? {
        let n = replicas.count
        for _ in 0..<6 {
            let r = rng.below(n), x = rng.below(n)
            if isDeliverable(r, x) { return .next(r: r, x: x) }
        }
        var out: [Delivery] = []
        for (x, p, target) in pendingAdds where !replicas[target].joined {
            out.append(.welcome(r: target, x: x, position: p))
        }
        for r in 0..<n { for x in 0..<n where isDeliverable(r, x) { out.append(.next(r: r, x: x)) } }
        return out.isEmpty ? nil : rng.pick(out)
    }

    mutating func deliver(_ d: Delivery) {
        switch d {
        case .welcome(let r, let x, let p):
            processWelcome(r, logs[x][p])
            check(r, logs[x][p])
        case .next(let r, let x):
            let e = logs[x][replicas[r].cursor[x]]
            switch e.body {
            case .op(let op):
                if case .add(let target) = op.kind, target == replicas[r].id {
                    processWelcome(r, e)
                } else {
                    replicas[r].cursor[x] += 1
                    do {
                        try replicas[r].state.apply(op)
                        try replicas[r].shadow?.apply(op)
                        replicas[r].seq += 1
                        try replicas[r].state.recordAcknowledgment(of: op.id, by: replicas[r].id, atSeq: replicas[r].seq)
                        try replicas[r].shadow?.recordAcknowledgment(of: op.id, by: replicas[r].id, atSeq: replicas[r].seq)
                    } catch { problem("processing \(op): \(error)") }
                    append(r, .ack(op.id))
                }
            case .ack(let o):
                replicas[r].cursor[x] += 1
                do {
                    try replicas[r].state.recordAcknowledgment(of: o, by: e.id.sender, atSeq: e.id.seq)
                    try replicas[r].shadow?.recordAcknowledgment(of: o, by: e.id.sender, atSeq: e.id.seq)
                } catch {
                    problem("ack \(e.id) of \(o): \(error)")
                }
            case .welcomeAck(let add):
                replicas[r].cursor[x] += 1
                do {
                    try replicas[r].state.recordWelcome(of: e.id.sender, add: add, atSeq: e.id.seq)
                    try replicas[r].shadow?.recordWelcome(of: e.id.sender, add: add, atSeq: e.id.seq)
                } catch {
                    problem("welcome-ack \(e.id) of \(add): \(error)")
                }
            }
            fold(r)
            check(r, e)
        }
    }

    /// Folds at random moments (exactness must not depend on when).
    mutating func fold(_ r: Int) {
        guard folding else { return }
        if rng.percent(30) { foldedOperations += replicas[r].state.foldSettled() } else { replicas[r].state.foldIfDue() }
    }

    mutating func processWelcome(_ r: Int, _ e: Envelope) {
        guard let welcome = e.welcome else { return problem("add without welcome") }
        do {
            try replicas[r].state.checkedMerge(welcome.state)
            if folding { try replicas[r].shadow!.checkedMerge(welcome.shadow!) }
            replicas[r].seq += 1
            try replicas[r].state.recordWelcome(of: replicas[r].id, add: e.id, atSeq: replicas[r].seq)
            try replicas[r].shadow?.recordWelcome(of: replicas[r].id, add: e.id, atSeq: replicas[r].seq)
        } catch { problem("welcome \(e.id): \(error)") }
        fold(r)
        for x in replicas.indices { replicas[r].cursor[x] = max(replicas[r].cursor[x], welcome.frontier[x]) }
        replicas[r].joined = true
        append(r, .welcomeAck(e.id))
    }

    /// The sender's view at send time must be what every receiver computes for that envelope, and
    /// (sampled) both queries must agree with the oracle.
    mutating func check(_ r: Int, _ e: Envelope) {
        // The replica's own state answers through its cache, which lives as long as the replica.
        let memoized = replicas[r].state.memoizedMembers(asSeenBy: e.id.sender, atSeq: e.id.seq)
        let state = replicas[r].state
        let view = state.members(asSeenBy: e.id.sender, atSeq: e.id.seq)
        if memoized != view { problem("memoized view of \(e.id) at replica \(r): \(memoized) vs \(view)") }
        if view != e.senderView { problem("view of \(e.id) at replica \(r): \(view) vs sent \(e.senderView)") }
        if let shadow = replicas[r].shadow {
            // The folded state answers every view a later envelope can take as the full history does.
            if state.members() != shadow.members() { problem("folded members() at replica \(r) differs") }
            for (x, other) in replicas.enumerated() where other.joined {
                // The next envelope of each sender that this replica has not processed yet (not
                // a welcome-ack: its view is evaluated after the welcome is recorded).
                let position = replicas[r].cursor[x]
                guard position > 0 else { continue }
                if position < logs[x].count, case .welcomeAck = logs[x][position].body { continue }
                let next = position < logs[x].count ? logs[x][position].id.seq : other.seq + 1
                if state.members(asSeenBy: other.id, atSeq: next) != shadow.members(asSeenBy: other.id, atSeq: next) {
                    problem("folded view of \(other.id)#\(next) at replica \(r) differs")
                }
            }
            if rng.percent(oraclePercent) {
                do {
                    let decoded = try MembershipState(wireBytes: state.wireBytes)
                    if decoded != state || decoded.members() != state.members() { problem("folded decode(encode) differs") }
                } catch { problem("decoding a folded state: \(error)") }
            }
            return
        }
        if rng.percent(oraclePercent) {
            if view != MembershipOracle.members(of: state, asSeenBy: e.id.sender, atSeq: e.id.seq) {
                problem("view of \(e.id) differs from oracle")
            }
            if state.members() != MembershipOracle.members(of: state) { problem("members() differs from oracle") }
        }
    }

    /// Merging two replicas' states must give an oracle-consistent history.
    mutating func checkRandomMerge() {
        let joined = replicas.indices.filter { replicas[$0].joined && !replicas[$0].state.isEmpty }
        guard joined.count >= 2 else { return }
        let a = replicas[rng.pick(joined)].state, b = replicas[rng.pick(joined)].state
        var ab = a, ba = b
        do {
            try ab.checkedMerge(b)
            try ba.checkedMerge(a)
        } catch { return problem("merge: \(error)") }
        if ab != ba { problem("merge is not commutative") }
        if ab.members() != MembershipOracle.members(of: ab) { problem("merged members() differs from oracle") }
        var again = ab
        again.merge(a)
        if again != ab { problem("merge is not idempotent") }
    }

    mutating func run(maxOperations: Int) {
        var operationsLeft = 1 + rng.below(maxOperations)
        let mergeStep = rng.below(40)
        var step = 0
        while true {
            step += 1
            if step == mergeStep && !folding { checkRandomMerge() }
            if operationsLeft > 0 && rng.percent(12) {
                operationsLeft = initiateRandom() ? operationsLeft - 1 : 0
                continue
            }
            if let delivery = randomDelivery() {
                deliver(delivery)
            } else if operationsLeft > 0 {
                operationsLeft = initiateRandom() ? operationsLeft - 1 : 0
            } else {
                break
            }
        }
        finalChecks()
    }

    /// At quiescence every replica that joined has processed (or skipped via a welcome) every
    /// envelope, so all hold the same history; it must match the oracle and survive encoding.
    mutating func finalChecks() {
        let joined = replicas.indices.filter { replicas[$0].joined }
        if folding {
            let members = replicas[joined[0]].state.members()
            for r in joined where replicas[r].state.members() != members { problem("replica \(r) diverged (folded)") }
            for r in joined where replicas[r].state.members() != replicas[r].shadow!.members() { problem("replica \(r) folded members differ") }
            return
        }
        let reference = replicas[joined[0]].state
        for r in joined where replicas[r].state != reference { problem("replica \(r) diverged") }
        if reference.members() != MembershipOracle.members(of: reference) { problem("final members() differs from oracle") }
        for replica in replicas where replica.seq > 0 {
            let seq = 1 + UInt64(rng.below(Int(replica.seq)))
            if reference.members(asSeenBy: replica.id, atSeq: seq)
                != MembershipOracle.members(of: reference, asSeenBy: replica.id, atSeq: seq) {
                problem("final view of \(replica.id)#\(seq) differs from oracle")
            }
        }
        let bytes = reference.wireBytes
        do {
            let decoded = try MembershipState(wireBytes: bytes)
            if decoded != reference || decoded.members() != reference.members() || decoded.wireBytes != bytes {
                problem("decode(encode) differs")
            }
        } catch { problem("decoding a valid state: \(error)") }
    }
}

@Suite struct RandomHistoryTests {
    @Test func incrementalMatchesOracleOnRandomHistories() {
        var problems: [String] = []
        var totalOps = 0
        var concurrentRemoves = 0
        var meta = SplitMix64(seed: 0xD6C6_4A11)
        for i in 0..<2_000 {
            let size = 2 + meta.below(11)  // 2...12 members
            var sim = GroupSimulation(seed: UInt64(i) &* 0x1000_0001 &+ 17, size: size)
            sim.run(maxOperations: 2 + size / 2)
            problems += sim.problems
            let final = sim.replicas[0].state
            totalOps += final.operationCount
            if final.operations.contains(where: { op in
                if case .remove = op.kind { return final.operations.contains { other in
                    other.id != op.id && !final.precedes(op.id, other.id) && !final.precedes(other.id, op.id) } }
                return false
            }) { concurrentRemoves += 1 }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        // The generator must actually produce concurrency, or the comparison proves little.
        #expect(totalOps > 6_000)
        #expect(concurrentRemoves > 300)
    }

    /// Folding (§4.3) is exact: every replica folds settled operations at random moments, and every
    /// view a later envelope can take, and `members()`, must equal those of the unfolded history
    /// (which the test above checks against the oracle); folded states survive encoding.
    @Test func foldingIsExactOnRandomHistories() {
        var problems: [String] = []
        var folded = 0
        var meta = SplitMix64(seed: 0xF01D_2026)
        for i in 0..<600 {
            let size = 2 + meta.below(9)
            var sim = GroupSimulation(seed: UInt64(i) &* 0x2000_0003 &+ 5, size: size, folding: true)
            sim.run(maxOperations: 3 + size)
            problems += sim.problems
            folded += sim.foldedOperations
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(folded > 1_000)
    }
}
