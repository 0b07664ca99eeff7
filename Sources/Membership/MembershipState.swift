@_spi(PlantedDefects) public import DCGKAEncoding

/// A member's membership history (§4): the operations it has processed, and for each of them the
/// seq from which each member knows it. That knowledge table is the order ≺ of §4.1:
/// `o1 ≺ o2` exactly when o2's sender knew o1 at a seq strictly below o2's.
///
/// Member IDs are interned to small integers so the knowledge table and the per-member
/// bookkeeping stay compact; `Members(H)` is recomputed on the mutations that can change it,
/// so ``members()`` is a stored read.
public struct MembershipState: Sendable {
    /// Hard limits of the encoding (§8), also the most a state will hold.
    public static let maxMembers = 65_536
    public static let maxOperations = 1_000_000
    static let encodingVersion: UInt8 = 3

    /// One operation and who knows it since when.
    struct Record: Sendable {
        var op: MembershipOperation
        var sender: Int32
        /// Add/remove target; -1 for the create.
        var target: Int32
        /// For the create: the interned initial members besides the creator.
        var createMembers: [Int32]
    }

    var memberIDs: [MemberID] = []
    var memberIndex: [MemberID: Int32] = [:]
    var records: [Record] = []
    // Per record, kept apart from `records` so the hot comparisons touch only what they need.
    var senderOf: [Int32] = []
    var seqOf: [UInt64] = []
    /// member index -> the seq from which that member knows the record's operation.
    var knownOf: [KnowledgeRow] = []
    var recordIndex: [OperationID: Int32] = [:]
    /// The create's record while it is not folded; -1 otherwise.
    var createRecord: Int32 = -1
    /// The create's ID, kept after it is folded (knowledge below it is never valid).
    var createID: OperationID?
    /// Settled operations folded into a compact base (§4.3); nil until the first fold.
    var base: FoldedBase?
    /// Equivocators' operations cut off (§6.2; PROTOCOL-NOTES.md, "Equivocation"), sorted.
    var cuts: [Cut] = []
    /// At most this many cuts are held (one per remove that carried evidence).
    public static let maxCuts = 4096

    // Per-member bookkeeping, indexed by member index.
    var addsBySender: [[Int32]] = []
    var addsOfTarget: [[Int32]] = []
    var removesOfTarget: [[Int32]] = []
    /// Whether the member could ever send an operation that counts: it sent one, was added, or
    /// was listed in the create. A member named only as a remove's target never could.
    var mayOperate: [Bool] = []
    /// Highest seq of an operation sent by the member (0: none). Knowledge a member gains at or
    /// above it cannot change ≺, since ≺ only compares knowledge against later operations' seqs.
    var maxOpSeq: [UInt64] = []
    /// How many operations have a knowledge entry for the member, and the largest such entry:
    /// together they make the "sender knows everything" fast path of `members(asSeenBy:atSeq:)` O(1).
    var knownCount: [Int] = []
    var maxKnownSeq: [UInt64] = []

    var cachedMembers: Set<MemberID> = []
    /// Views of senders that did not know every operation, by the operations they did not know
    /// (``memoizedMembers(asSeenBy:atSeq:)``). Emptied whenever the order between recorded
    /// operations may change (with `cachedMembers`); never encoded or compared.
    var viewCache: [[Int32]: Set<MemberID>] = [:]
    static let viewCacheLimit = 64
    /// A digest of ``members()`` and of the views in `viewCache` (the view hashes of §5.6, made by
    /// the caller's function), kept and emptied with them; never encoded or compared.
    var membersDigest: Bytes32?
    var viewDigestCache: [[Int32]: Bytes32] = [:]

    /// Whether settled operations are folded (§4.3). Not part of the state's value: off only to
    /// measure what folding saves, and in tests that compare with the unfolded history.
    public var foldsSettledOperations = true
    /// Knowledge changes since the last fold attempt; an attempt costs O(records × participants),
    /// so it waits for as many changes as there are records (amortized O(participants) a change).
    var changesSinceFoldAttempt = 0

    /// An empty history.
    public init() {}

    /// The heap memory the state's tables reserve, in bytes (element storage by capacity, plus
    /// hash-table overhead; not the allocator's own bookkeeping). The decoder keeps it within
    /// 64 bytes per input byte (issue 8, item 4).
    public var estimatedMemoryBytes: Int {
        func array<T>(_ a: [T]) -> Int { a.capacity * MemoryLayout<T>.stride }
        func table<K, V>(_ d: [K: V]) -> Int { d.capacity * (MemoryLayout<K>.stride + MemoryLayout<V>.stride + 1) }
        var total = array(memberIDs) + table(memberIndex) + array(records) + array(senderOf) + array(seqOf)
            + array(knownOf) + table(recordIndex) + array(maxOpSeq) + array(knownCount) + array(maxKnownSeq)
            + array(mayOperate) + array(addsBySender) + array(addsOfTarget) + array(removesOfTarget) + array(cuts)
        for rec in records {
            total += array(rec.createMembers)
            if case .create(let members) = rec.op.kind { total += array(members) }
        }
        for row in knownOf { total += row.estimatedMemoryBytes }
        for list in [addsBySender, addsOfTarget, removesOfTarget] { for l in list { total += array(l) } }
        if let base { total += array(base.members) + table(base.through) + array(base.introduced) }
        return total
    }

    public var isEmpty: Bool { records.isEmpty && base == nil }
    /// Operations held one by one: those not yet folded.
    public var operationCount: Int { records.count }
    /// Whether some operations have been folded into the base.
    public var isFolded: Bool { base != nil }

    /// The create's ID, also once it is folded.
    public var createOperation: OperationID? { createID }

    /// The create, while it is not folded (every non-empty history has exactly one).
    public var create: MembershipOperation? { createRecord >= 0 ? records[Int(createRecord)].op : nil }

    /// The operations not yet folded, sorted by ID.
    public var operations: [MembershipOperation] { records.map(\.op).sorted { $0.id < $1.id } }

    /// Every ID that appears in an operation, folded ones included, sorted.
    public var participants: [MemberID] { memberIDs.sorted() }

    /// Whether the history holds `op`, one by one or folded.
    public func contains(_ op: OperationID) -> Bool { recordIndex[op] != nil || isFoldedOperation(op) }

    /// Whether `op` is one of the folded operations (its sender's folded prefix covers it).
    public func isFoldedOperation(_ op: OperationID) -> Bool {
        guard let base, let m = memberIndex[op.sender], let through = base.through[m] else { return false }
        return op.seq <= through
    }

    /// An operation held one by one (nil for folded ones).
    public func operation(_ id: OperationID) -> MembershipOperation? {
        recordIndex[id].map { records[Int($0)].op }
    }

    /// The seq from which `member` knows `op`, if it does (nil for folded operations).
    public func knownSeq(of op: OperationID, by member: MemberID) -> UInt64? {
        guard let r = recordIndex[op], let m = memberIndex[member] else { return nil }
        return knownOf[Int(r)][m]
    }

    public func isKnownParticipant(_ id: MemberID) -> Bool { memberIndex[id] != nil }

    /// Whether `id` may send envelopes in this group at all: it was listed in the create, added,
    /// or sent an operation (folded ones included). A participant named only as a remove's target
    /// may not: a member cannot make a stranger a sender by removing it (PROTOCOL-NOTES.md).
    public func maySend(_ id: MemberID) -> Bool {
        guard let m = memberIndex[id] else { return false }
        return mayOperate[Int(m)]
    }

    /// `a ≺ b` (§4.1). False when either is unknown, and never true for `a == b`. A folded
    /// operation precedes every operation held one by one.
    public func precedes(_ a: OperationID, _ b: OperationID) -> Bool {
        guard let rb = recordIndex[b] else { return false }
        guard let ra = recordIndex[a] else { return isFoldedOperation(a) }
        return precedes(ra, rb)
    }

    @inline(__always)
    func precedes(_ a: Int32, _ b: Int32) -> Bool {
        guard let k = knownOf[Int(a)][senderOf[Int(b)]] else { return false }
        return k < seqOf[Int(b)]
    }

    /// `member-view(me)`: Members over the whole history. O(1): maintained by every mutation.
    public func members() -> Set<MemberID> { cachedMembers }

    /// `member-view(sender)` while processing its envelope `seq` (§4.3): Members of the operations
    /// `sender` knew at a seq ≤ `seq`. O(1) when it knew all of them by then (the common case: the
    /// answer is ``members()``); otherwise one pass to select the subset and a recomputation on it.
    public func members(asSeenBy sender: MemberID, atSeq seq: UInt64) -> Set<MemberID> {
        switch unknownOperations(to: sender, atSeq: seq) {
        case nil: return []
        case let left?: return left.isEmpty ? cachedMembers : members(without: left)
        }
    }

    /// The records `sender` did not know at its envelope `seq`: empty when it knew them all (O(1)
    /// then), nil when the sender or the create is unknown.
    func unknownOperations(to sender: MemberID, atSeq seq: UInt64) -> [Int32]? {
        guard createRecord >= 0 || base != nil, let s = memberIndex[sender] else { return nil }
        let si = Int(s)
        if knownCount[si] == records.count && maxKnownSeq[si] <= seq { return [] }
        let cut = cutMask { knows(s, $0, atSeq: seq) }
        var left: [Int32] = []
        for i in records.indices {
            if let k = knownOf[i][s], k <= seq, cut?[i] != true { continue }
            left.append(Int32(i))
        }
        return left
    }

    // MARK: Cuts (§6.2)

    /// An equivocator's operations from seq `from` on, cut off by the remove `by` that carried the
    /// evidence of its fork: they have no effect in any view that knows `by` (a sender's view
    /// from the seq at which it knew `by`; mine once I processed it). `by` is nil once that
    /// remove is folded, when every view knows it; the cut-off operations are then dropped.
    /// The create is never cut off.
    public struct Cut: Hashable, Sendable, Comparable {
        public var target: MemberID
        public var from: UInt64
        public var by: OperationID?

        public static func < (a: Cut, b: Cut) -> Bool {
            if a.target != b.target { return a.target < b.target }
            if a.from != b.from { return a.from < b.from }
            switch (a.by, b.by) {
            case (nil, nil), (_, nil): return false
            case (nil, _): return true
            case let (x?, y?): return x < y
            }
        }
    }

    /// The cuts held, sorted.
    public var cutOffs: [Cut] { cuts }

    /// Records that the remove `remove` (already applied) carried evidence that `target`
    /// equivocated from `seq` on: from here, `target`'s operations from `seq` on count in no view
    /// that knows `remove`. Idempotent per remove.
    public mutating func recordCut(of target: MemberID, from seq: UInt64, by remove: OperationID) throws(MembershipError) {
        guard let r = recordIndex[remove], case .remove(let removed) = records[Int(r)].op.kind, removed == target
        else { throw .unknownOperation(remove) }
        guard seq >= 1, seq < KnowledgeRow.unknown else { throw .invalidSequenceNumber(seq) }
        guard !cuts.contains(where: { $0.by == remove }) else { return }
        guard cuts.count < Self.maxCuts else { throw .limitExceeded }
        var from = seq
        if let create = createID, create.sender == target { from = max(from, create.seq + 1) }
        cuts.append(Cut(target: target, from: from, by: remove))
        cuts.sort()
        recomputeMembers()
        changesSinceFoldAttempt += 1
    }

    /// Whether `member` knew the cut at its envelope `seq`.
    func knows(_ member: Int32, _ cut: Cut, atSeq seq: UInt64) -> Bool {
        guard let by = cut.by else { return true }
        guard let r = recordIndex[by] else { return isFoldedOperation(by) }
        guard let k = knownOf[Int(r)][member] else { return false }
        return k <= seq
    }

    /// Per record, whether a cut that `knows` accepts covers it; nil when none does.
    ///
    /// A cut covers its target's operations from its seq on, and then every operation whose
    /// sender is no member in its own view before it once the covered operations are taken out
    /// of that view: a member that only a cut-off add introduced (on one side of the fork) sent
    /// operations that counted while the cut was unknown, and count nowhere once it is known
    /// (the other side never delivers them: their sender is a stranger past the cut there).
    func cutMask(_ knows: (Cut) -> Bool) -> [Bool]? {
        guard !cuts.isEmpty else { return nil }
        var mask: [Bool]?
        var suspects = Set<Int32>()
        for cut in cuts where knows(cut) {
            guard let t = memberIndex[cut.target] else { continue }
            for r in records.indices where senderOf[r] == t && seqOf[r] >= cut.from {
                if mask == nil { mask = [Bool](repeating: false, count: records.count) }
                mask![r] = true
                if case .add = records[r].op.kind { suspects.insert(records[r].target) }
            }
        }
        guard var covered = mask, !suspects.isEmpty else { return mask }
        // Members with authority of their own: the creator, the create's members, the base's.
        var rooted = Set<Int32>()
        if createRecord >= 0 {
            rooted.insert(records[Int(createRecord)].sender)
            rooted.formUnion(records[Int(createRecord)].createMembers)
        }
        if let base { rooted.formUnion(base.members) }
        // Operations of members whose authority rested on covered adds (a fixpoint: a covered
        // add of theirs makes its target a suspect in turn; at most one round per covered add).
        var changed = true
        while changed {
            changed = false
            for r in records.indices where !covered[r] && r != Int(createRecord) && suspects.contains(senderOf[r]) {
                let s = senderOf[r]
                // The adds of s that s knew before r. None left uncovered (and no authority of
                // its own): no member there. Some: §4.2 on s's view decides (rare: a member added
                // both by the cut side and otherwise).
                let known = addsOfTarget[Int(s)].filter { a in knownOf[Int(a)][s].map { $0 < seqOf[r] } ?? false }
                if rooted.contains(s) || known.contains(where: { !covered[Int($0)] }) {
                    var included = [Bool](repeating: false, count: records.count)
                    for i in records.indices where !covered[i] {
                        if let k = knownOf[i][s], k < seqOf[r] { included[i] = true }
                    }
                    let wasMember = (base != nil || included[Int(createRecord)])
                        && computeMembers(included: included).contains(memberIDs[Int(s)])
                    guard !wasMember else { continue }
                }
                covered[r] = true
                changed = true
                if case .add = records[r].op.kind { suspects.insert(records[r].target) }
            }
        }
        return covered
    }

    /// Whether `op` was dropped because a cut known to every view covers it.
    public func isDroppedByCut(_ op: OperationID) -> Bool {
        cuts.contains { $0.by == nil && $0.target == op.sender && op.seq >= $0.from }
    }

    /// Whether one of the operations held is cut off in my view.
    public func isCutOff(_ op: OperationID) -> Bool {
        cuts.contains { $0.target == op.sender && op.seq >= $0.from }
    }

    /// Members over every record except `left`.
    func members(without left: [Int32]) -> Set<MemberID> {
        var included = [Bool](repeating: true, count: records.count)
        for i in left { included[Int(i)] = false }
        if base == nil && !included[Int(createRecord)] { return [] }
        return computeMembers(included: included)
    }

    /// ``members(asSeenBy:atSeq:)``, remembering the answer by the operations the sender did not
    /// know. Under concurrency most senders miss the same few recent operations (those still in
    /// flight), and an acknowledgment never changes the order between operations already recorded
    /// when its sender's envelopes arrive in order, so one answer serves many envelopes.
    public mutating func memoizedMembers(asSeenBy sender: MemberID, atSeq seq: UInt64) -> Set<MemberID> {
        guard let left = unknownOperations(to: sender, atSeq: seq) else { return [] }
        if left.isEmpty { return cachedMembers }
        if let known = viewCache[left] { return known }
        let view = members(without: left)
        if viewCache.count >= Self.viewCacheLimit { viewCache.removeAll(keepingCapacity: true) }
        viewCache[left] = view
        return view
    }

    /// `digest` of ``members()``, remembered until the members change (the view hash a member
    /// signs into each of its control envelopes).
    public mutating func membersDigest(_ digest: (Set<MemberID>) -> Bytes32) -> Bytes32 {
        if let known = membersDigest { return known }
        let value = digest(cachedMembers)
        membersDigest = value
        return value
    }

    /// `digest` of ``memoizedMembers(asSeenBy:atSeq:)``, remembered like the view itself: every
    /// receiver checks a view hash per control envelope, and most of them are of the same few views.
    public mutating func memoizedDigest(
        asSeenBy sender: MemberID, atSeq seq: UInt64, _ digest: (Set<MemberID>) -> Bytes32
    ) -> Bytes32 {
        guard let left = unknownOperations(to: sender, atSeq: seq) else { return digest([]) }
        if left.isEmpty { return membersDigest(digest) }
        if let known = viewDigestCache[left] { return known }
        let value = digest(memoizedMembers(asSeenBy: sender, atSeq: seq))
        if viewDigestCache.count >= Self.viewCacheLimit { viewDigestCache.removeAll(keepingCapacity: true) }
        viewDigestCache[left] = value
        return value
    }

    // MARK: Mutation

    /// Adds a processed create/add/remove. Its sender knows it from its own seq (`op.id.seq`) on.
    public mutating func apply(_ op: MembershipOperation) throws(MembershipError) {
        guard op.id.seq >= 1, op.id.seq < KnowledgeRow.unknown else { throw .invalidSequenceNumber(op.id.seq) }
        guard !contains(op.id) else { throw .duplicateOperation(op.id) }
        guard records.count < Self.maxOperations, newParticipants(of: op) + memberIDs.count <= Self.maxMembers
        else { throw .limitExceeded }
        if case .create = op.kind {
            guard createID == nil else { throw .secondCreate(op.id) }
            guard op.isWellFormed else { throw .invalidCreate(op.id) }
        } else {
            guard let create = createID else { throw .noCreate }
            // An operation of the creator from before its create would precede the create.
            if op.id.sender == create.sender && op.id.seq < create.seq {
                throw .invalidSequenceNumber(op.id.seq)
            }
        }
        var lowered: [Int32] = []
        insert(op, lowered: &lowered)
        recomputeMembers()
        changesSinceFoldAttempt += 1
    }

    /// `member` acknowledged (ack / add-ack) `op` in its envelope `seq`: from `seq` on it knows `op`.
    /// Keeps the smaller seq if recorded twice. Returns what ``undo(_:)`` needs to take it back,
    /// so a caller that must be able to roll back need not copy the whole state first.
    @discardableResult
    public mutating func recordAcknowledgment(
        of op: OperationID, by member: MemberID, atSeq seq: UInt64
    ) throws(MembershipError) -> AcknowledgmentUndo {
        guard let m = memberIndex[member] else { throw .unknownParticipant(member) }
        try checkKnowledgeSeq(seq, member: m)
        guard let r = recordIndex[op] else {
            // Knowing a folded operation changes nothing: it precedes everything held.
            // Knowing an operation a cut dropped changes nothing either: it counts in no view.
            guard isFoldedOperation(op) || isDroppedByCut(op) else { throw .unknownOperation(op) }
            return AcknowledgmentUndo(record: -1, member: m, known: nil, knownCount: 0, maxKnownSeq: 0, members: cachedMembers)
        }
        let undo = AcknowledgmentUndo(
            record: r, member: m, known: knownOf[Int(r)][m], knownCount: knownCount[Int(m)],
            maxKnownSeq: maxKnownSeq[Int(m)], members: cachedMembers)
        var lowered: [Int32] = []
        let changed = setKnown(record: r, member: m, seq: seq, lowered: &lowered)
        finishLowered(lowered)
        if changed && maxOpSeq[Int(m)] > seq { recomputeMembers() }
        if changed { changesSinceFoldAttempt += 1 }
        return undo
    }

    /// What one ``recordAcknowledgment(of:by:atSeq:)`` replaced.
    public struct AcknowledgmentUndo: Sendable {
        let record: Int32
        let member: Int32
        let known: UInt64?
        let knownCount: Int
        let maxKnownSeq: UInt64
        let members: Set<MemberID>
    }

    /// Takes back an acknowledgment recorded by this state; undo several in reverse order.
    public mutating func undo(_ undo: AcknowledgmentUndo) {
        guard undo.record >= 0 else { return }
        knownOf[Int(undo.record)][undo.member] = undo.known
        knownCount[Int(undo.member)] = undo.knownCount
        maxKnownSeq[Int(undo.member)] = undo.maxKnownSeq
        cachedMembers = undo.members
        forgetViews()
    }

    /// Empties what is derived from the current order: the memoized views and their digests.
    mutating func forgetViews() {
        viewCache.removeAll()
        viewDigestCache.removeAll()
        membersDigest = nil
    }

    /// `member` processed the welcome of its add `add` and sent its welcome-ack at `seq`: every
    /// operation that precedes `add`, and `add` itself, is known to `member` from `seq` on (smaller
    /// existing values are kept). Call it after merging the adder's state.
    public mutating func recordWelcome(
        of member: MemberID, add: OperationID, atSeq seq: UInt64
    ) throws(MembershipError) {
        guard let a = recordIndex[add] else {
            // A folded add, and so everything before it, precedes every operation held.
            guard isFoldedOperation(add) || isDroppedByCut(add), let m = memberIndex[member] else { throw .unknownOperation(add) }
            try checkKnowledgeSeq(seq, member: m)
            return
        }
        guard case .add(let target) = records[Int(a)].op.kind, target == member,
              let m = memberIndex[member]
        else { throw .invalidWelcome(add) }
        try checkKnowledgeSeq(seq, member: m)
        var lowered: [Int32] = []
        var changed = false
        for r in records.indices {
            let ri = Int32(r)
            if ri == a || precedes(ri, a) {
                if setKnown(record: ri, member: m, seq: seq, lowered: &lowered) { changed = true }
            }
        }
        finishLowered(lowered)
        if changed && maxOpSeq[Int(m)] > seq { recomputeMembers() }
        if changed { changesSinceFoldAttempt += 1 }
    }

    /// History ∪ `other` (a new member does this with the adder's state from its welcome).
    /// Knowledge recorded on both sides keeps the smaller seq. If `other` belongs to another group
    /// (different create) or holds a different operation under a known ID, nothing is merged; use
    /// ``checkedMerge(_:)`` to learn about it.
    public mutating func merge(_ other: MembershipState) {
        do { try checkedMerge(other) } catch {}
    }

    /// ``merge(_:)`` that reports a conflicting `other` (and then leaves `self` unchanged).
    public mutating func checkedMerge(_ other: MembershipState) throws(MembershipError) {
        if other.isEmpty { return }
        if isEmpty { let folds = foldsSettledOperations; self = other; foldsSettledOperations = folds; return }
        if let mine = createID, let theirs = other.createID, mine != theirs { throw .conflictingOperation(theirs) }
        for rec in other.records {
            if let i = recordIndex[rec.op.id] {
                guard records[Int(i)].op == rec.op else { throw .conflictingOperation(rec.op.id) }
            } else if case .create = rec.op.kind, createID != rec.op.id {
                throw .conflictingOperation(rec.op.id)  // self already has a different create
            }
        }
        let newOps = other.records.reduce(0) { $0 + (recordIndex[$1.op.id] == nil ? 1 : 0) }
        let newMembers = other.memberIDs.reduce(0) { $0 + (memberIndex[$1] == nil ? 1 : 0) }
        guard records.count + newOps <= Self.maxOperations, memberIDs.count + newMembers <= Self.maxMembers
        else { throw .limitExceeded }
        if base != nil || other.base != nil { return try mergeFolded(other) }
        var lowered: [Int32] = []
        for (o, rec) in other.records.enumerated() {
            let r = recordIndex[rec.op.id] ?? insert(rec.op, lowered: &lowered)
            for (om, seq) in other.knownOf[o] {
                let m = intern(other.memberIDs[Int(om)])
                _ = setKnown(record: r, member: m, seq: seq, lowered: &lowered)
            }
        }
        finishLowered(lowered)
        for cut in other.cuts where !cuts.contains(cut) {
            guard cuts.count < Self.maxCuts else { break }
            cuts.append(cut)
        }
        cuts.sort()
        recomputeMembers()
    }

    /// The merge when either side has folded operations. Each side's base precedes everything it
    /// still holds (the fold invariant), and in an honest history what one side folded the other
    /// holds one by one or folded too (a settled operation was acknowledged by every member,
    /// the other side's owner included, before that side's newest envelopes). So the merged base
    /// is `other`'s base plus the operations of `other` that `self` had folded, evaluated on
    /// `other`'s order; operations `other` folded are dropped from `self`'s side.
    mutating func mergeFolded(_ other: MembershipState) throws(MembershipError) {
        func foldedBySelf(_ id: OperationID) -> Bool { isFoldedOperation(id) }
        var newlyFolded = [Bool](repeating: false, count: other.records.count)
        for (o, rec) in other.records.enumerated() where foldedBySelf(rec.op.id) { newlyFolded[o] = true }
        guard other.base != nil || other.createRecord < 0 || newlyFolded[Int(other.createRecord)] || base == nil
        else { throw .conflictingOperation(other.records[Int(other.createRecord)].op.id) }
        // What self folded must precede everything else `other` holds, as it does at self
        // (operations cut off count nowhere and are left out).
        let allCuts = cuts + other.cuts
        for (o, rec) in other.records.enumerated()
        where !newlyFolded[o] && !allCuts.contains(where: { $0.target == rec.op.id.sender && rec.op.id.seq >= $0.from }) {
            for f in other.records.indices where newlyFolded[f] {
                guard other.precedes(Int32(f), Int32(o)) else { throw .conflictingOperation(rec.op.id) }
            }
        }
        let anyNew = newlyFolded.contains(true)
        let baseMembers: Set<MemberID>
        if anyNew {
            baseMembers = other.computeMembers(included: newlyFolded)
        } else if let theirs = other.base {
            baseMembers = Set(theirs.members.map { other.memberIDs[Int($0)] })
        } else {
            baseMembers = Set(base!.members.map { memberIDs[Int($0)] })
        }

        var through: [MemberID: UInt64] = [:]
        var introduced: Set<MemberID> = []
        for side in [self, other] {
            if let b = side.base {
                for (m, seq) in b.through { through[side.memberIDs[Int(m)], default: 0].formMax(seq) }
                for (m, flag) in b.introduced.enumerated() where flag { introduced.insert(side.memberIDs[m]) }
            }
        }
        if anyNew {
            for (o, rec) in other.records.enumerated() where newlyFolded[o] { through[rec.op.id.sender, default: 0].formMax(rec.op.id.seq) }
            for (m, flag) in other.mayOperate.enumerated() where flag { introduced.insert(other.memberIDs[m]) }
        }
        let next = MembershipState.assembled(
            create: createID ?? other.createID, baseMembers: baseMembers, through: through, introduced: introduced,
            from: [(other, nil), (self, nil)], cuts: Array(Set(cuts).union(other.cuts)), folds: foldsSettledOperations)
        self = next
    }

    // MARK: Folding (§4.3)

    /// Folds settled operations when enough has changed since the last attempt (see
    /// ``foldSettled()``); callers invoke it once a change is final (never inside a transaction
    /// that may still be undone, since folding renumbers the records).
    ///
    /// `holdingBack` names operations not to fold although they may be settled: per sender, those
    /// from a seq on (the group layer holds back an equivocator's operations past its fork until
    /// the remove that cuts them off arrives).
    public mutating func foldIfDue(holdingBack: [MemberID: UInt64] = [:]) {
        guard foldsSettledOperations, changesSinceFoldAttempt > 0,
              changesSinceFoldAttempt >= min(records.count, 64) || records.count <= 8 else { return }
        foldSettled(holdingBack: holdingBack)
    }

    /// Folds every settled operation into the base and returns how many were folded.
    ///
    /// An operation is **settled** when every member that may still send an operation that
    /// counts (it sent one, was added or was listed in the create, however it stands now) knows
    /// it: it acknowledged it, or every add of it in the history follows the operation (its
    /// welcome then hands it on before its first envelope). A member named only as a remove's
    /// target can never send an operation that counts. Every later operation therefore follows a
    /// settled one. The folded set also precedes every operation kept one by one (an operation
    /// concurrent with an unsettled one is kept), so for any set L of operations that follow the
    /// base, Members(base ∪ L) equals §4.2 with one root that gives authority to, and admits,
    /// exactly Members(base) (PROTOCOL-NOTES.md, "Folding"). Exact: no clock, no horizon.
    ///
    /// Operations that `holdingBack` names (per sender, from a seq on) are not folded, nor is
    /// anything that does not precede them: folding less is always exact.
    @discardableResult
    public mutating func foldSettled(holdingBack: [MemberID: UInt64] = [:]) -> Int {
        changesSinceFoldAttempt = 0
        guard !records.isEmpty else { return 0 }
        var listed = [Bool](repeating: false, count: memberIDs.count)
        if createRecord >= 0 {
            let create = records[Int(createRecord)]
            listed[Int(create.sender)] = true
            for m in create.createMembers { listed[Int(m)] = true }
        }
        func knowsForever(_ r: Int32, _ p: Int) -> Bool {
            if knownOf[Int(r)][Int32(p)] != nil { return true }
            if base?.introduced[p] == true { return false }
            if listed[p] { return r == createRecord }
            let adds = addsOfTarget[p]
            return !adds.isEmpty && adds.allSatisfy { $0 == r || precedes(r, $0) }
        }
        // Cut-off operations are never folded, and do not keep others from folding: they count in
        // no view that knows their cut, and a folded cut's remove is known to every view.
        let cutOff = cutMask { _ in true } ?? [Bool](repeating: false, count: records.count)
        // Nothing a cut equivocator sends from its forked seq on counts in my view, nor anything
        // of a member that only cut-off adds introduced: neither need know an operation for it
        // to settle here (otherwise one that never acknowledges would hold folding back for ever).
        var counts = mayOperate
        let cutTargets = Set(cuts.compactMap { memberIndex[$0.target] })
        for m in counts.indices where counts[m] && !listed[m] && base?.introduced[m] != true {
            let adds = addsOfTarget[m]
            if !adds.isEmpty && adds.allSatisfy({ cutOff[Int($0)] }) { counts[m] = false }
        }
        for t in cutTargets where Int(t) < counts.count { counts[Int(t)] = false }
        var folded = [Bool](repeating: false, count: records.count)
        let heldBack = holdingBack.isEmpty ? [:] : Dictionary(uniqueKeysWithValues: holdingBack.compactMap { id, seq in
            memberIndex[id].map { ($0, seq) }
        })
        for r in records.indices where !cutOff[r] {
            if let from = heldBack[senderOf[r]], seqOf[r] >= from { continue }
            folded[r] = counts.indices.allSatisfy { !counts[$0] || knowsForever(Int32(r), $0) }
        }
        guard folded.contains(true) else { return 0 }
        // Keep what does not precede everything kept (a fixpoint: dropping one may drop more).
        var changed = true
        while changed {
            changed = false
            for r in records.indices where folded[r] {
                for u in records.indices where !folded[u] && !cutOff[u] && !precedes(Int32(r), Int32(u)) {
                    folded[r] = false
                    changed = true
                    break
                }
            }
        }
        let count = folded.reduce(0) { $0 + ($1 ? 1 : 0) }
        guard count > 0, base != nil || folded[Int(createRecord)] else { return 0 }
        let members = computeMembers(included: folded)

        var through: [MemberID: UInt64] = [:]
        var introduced: Set<MemberID> = []
        if let base {
            for (m, seq) in base.through { through[memberIDs[Int(m)]] = seq }
            for (m, flag) in base.introduced.enumerated() where flag { introduced.insert(memberIDs[m]) }
        }
        for r in records.indices where folded[r] { through[memberIDs[Int(senderOf[r])], default: 0].formMax(seqOf[r]) }
        for m in mayOperate.indices where mayOperate[m] { introduced.insert(memberIDs[m]) }
        let next = MembershipState.assembled(
            create: createID, baseMembers: members, through: through, introduced: introduced,
            from: [(self, folded)], cuts: cuts, folds: foldsSettledOperations)
        self = next
        return count
    }

    /// A folded state built from IDs: the base, then the records of `sources` that the base does
    /// not cover (`skip[r]` drops more), knowledge merged by minimum. Only IDs the result
    /// refers to are interned, so a member named only by folded operations that can never act
    /// (a remove's target) leaves the table, and its knowledge with it.
    ///
    /// A cut whose remove is folded becomes known to every view (`by` nil), and the operations
    /// it covers are dropped.
    static func assembled(
        create: OperationID?, baseMembers: Set<MemberID>, through: [MemberID: UInt64], introduced: Set<MemberID>,
        from sources: [(MembershipState, [Bool]?)], cuts: [Cut], folds: Bool
    ) -> MembershipState {
        var next = MembershipState()
        next.foldsSettledOperations = folds
        next.createID = create
        for id in introduced.sorted() { _ = next.intern(id) }
        for id in through.keys.sorted() { _ = next.intern(id) }
        if let create { _ = next.intern(create.sender) }
        var introducedFlags = [Bool](repeating: false, count: next.memberIDs.count)
        for id in introduced { introducedFlags[Int(next.memberIndex[id]!)] = true }
        next.base = FoldedBase(
            members: baseMembers.map { next.intern($0) }.sorted(),
            through: Dictionary(uniqueKeysWithValues: through.map { (next.memberIndex[$0.key]!, $0.value) }),
            introduced: introducedFlags)
        for (m, flag) in introducedFlags.enumerated() where flag { next.mayOperate[m] = true }
        var heldCuts = Set<Cut>()
        for var cut in cuts {
            if let by = cut.by, next.isFoldedOperation(by) { cut.by = nil }
            heldCuts.insert(cut)
        }
        // One cut per remove; a universal one replaces the same remove's pending one.
        let universal = heldCuts.filter { $0.by == nil }
        next.cuts = heldCuts.filter { $0.by != nil || universal.contains($0) }.sorted()
        func coveredByCut(_ id: OperationID) -> Bool {
            universal.contains { $0.target == id.sender && id.seq >= $0.from }
        }
        // A cut-off add stays while its target's own operations are held: they count in no view
        // that knows the cut only because that add does not (see ``cutMask(_:)``).
        var keptSenders = Set<MemberID>()
        for (side, skip) in sources {
            for (o, rec) in side.records.enumerated()
            where skip?[o] != true && !next.isFoldedOperation(rec.op.id) && !coveredByCut(rec.op.id) {
                keptSenders.insert(rec.op.id.sender)
            }
        }
        func droppedByCut(_ op: MembershipOperation) -> Bool {
            guard coveredByCut(op.id) else { return false }
            if case .add(let target) = op.kind, keptSenders.contains(target) { return false }
            return true
        }
        var lowered: [Int32] = []
        for (side, skip) in sources {
            for (o, rec) in side.records.enumerated()
            where skip?[o] != true && !next.isFoldedOperation(rec.op.id) && !droppedByCut(rec.op) {
                _ = next.recordIndex[rec.op.id] ?? next.insert(rec.op, lowered: &lowered)
            }
        }
        for (side, skip) in sources {
            for (o, rec) in side.records.enumerated() where skip?[o] != true {
                guard let r = next.recordIndex[rec.op.id] else { continue }
                for (om, seq) in side.knownOf[o] {
                    guard let m = next.memberIndex[side.memberIDs[Int(om)]] else { continue }
                    _ = next.setKnown(record: r, member: m, seq: seq, lowered: &lowered)
                }
            }
        }
        next.finishLowered(lowered)
        next.recomputeMembers()
        return next
    }

    // MARK: Internals

    /// Seqs start at 1, and nobody may know anything from before the creator's create at the
    /// creator's side (that would put an operation before the create, which must be minimal).
    func checkKnowledgeSeq(_ seq: UInt64, member m: Int32) throws(MembershipError) {
        guard seq >= 1, seq < KnowledgeRow.unknown else { throw .invalidSequenceNumber(seq) }
        if let create = createID, memberIDs[Int(m)] == create.sender, seq < create.seq {
            throw .invalidSequenceNumber(seq)
        }
    }

    func newParticipants(of op: MembershipOperation) -> Int {
        var ids = [op.id.sender]
        switch op.kind {
        case .create(let members): ids += members
        case .add(let id), .remove(let id): ids.append(id)
        }
        return Set(ids).reduce(0) { $0 + (memberIndex[$1] == nil ? 1 : 0) }
    }

    mutating func intern(_ id: MemberID) -> Int32 {
        if let m = memberIndex[id] { return m }
        let m = Int32(memberIDs.count)
        memberIDs.append(id)
        memberIndex[id] = m
        addsBySender.append([])
        addsOfTarget.append([])
        removesOfTarget.append([])
        mayOperate.append(false)
        base?.introduced.append(false)
        maxOpSeq.append(0)
        knownCount.append(0)
        maxKnownSeq.append(0)
        return m
    }

    /// Stores `op` (no validation, no cache update) with its sender's knowledge of it.
    @discardableResult
    mutating func insert(_ op: MembershipOperation, lowered: inout [Int32]) -> Int32 {
        let r = Int32(records.count)
        let sender = intern(op.id.sender)
        mayOperate[Int(sender)] = true
        var target: Int32 = -1
        var createMembers: [Int32] = []
        switch op.kind {
        case .create(let members):
            createMembers.reserveCapacity(members.count)
            for member in members {
                let m = intern(member)
                createMembers.append(m)
                mayOperate[Int(m)] = true
            }
            createRecord = r
            createID = op.id
        case .add(let id):
            target = intern(id)
            mayOperate[Int(target)] = true
            addsBySender[Int(sender)].append(r)
            addsOfTarget[Int(target)].append(r)
        case .remove(let id):
            target = intern(id)
            removesOfTarget[Int(target)].append(r)
        }
        records.append(Record(op: op, sender: sender, target: target, createMembers: createMembers))
        senderOf.append(sender)
        seqOf.append(op.id.seq)
        knownOf.append(KnowledgeRow())
        recordIndex[op.id] = r
        maxOpSeq[Int(sender)] = max(maxOpSeq[Int(sender)], op.id.seq)
        _ = setKnown(record: r, member: sender, seq: op.id.seq, lowered: &lowered)
        return r
    }

    /// known[record][member] = min(existing, seq). Returns whether it changed. A lowered value
    /// that may have been the member's maximum is noted so `finishLowered` can make it exact again.
    mutating func setKnown(record r: Int32, member m: Int32, seq: UInt64, lowered: inout [Int32]) -> Bool {
        let mi = Int(m)
        if let old = knownOf[Int(r)][m] {
            guard seq < old else { return false }
            knownOf[Int(r)][m] = seq
            if old == maxKnownSeq[mi] { lowered.append(m) }
        } else {
            knownOf[Int(r)][m] = seq
            knownCount[mi] += 1
            maxKnownSeq[mi] = max(maxKnownSeq[mi], seq)
        }
        return true
    }

    mutating func finishLowered(_ lowered: [Int32]) {
        for m in Set(lowered) {
            var top: UInt64 = 0
            for known in knownOf { if let k = known[m], k > top { top = k } }
            maxKnownSeq[Int(m)] = top
        }
    }

    mutating func recomputeMembers() {
        cachedMembers = computeMembers(included: cutMask { _ in true }.map { $0.map { !$0 } })
        forgetViews()
    }

    /// §4.2 on the operations with `included[i]` (all when nil). The create is one root vertex
    /// standing for the whole chain `add(c→c) ≺ add(c→ID1) ≺ …`: chain edges are never deleted
    /// (nothing precedes the create, so `m2 ≺ r` holds whenever `m1 ≺ r`), and every chain vertex
    /// has the create's order relations to other operations, so an edge from any chain vertex
    /// `add(c→X)` is exactly an edge from the root with authority X.
    ///
    /// Cost: O(#creators + Σ over reachable adds of (#adds by its target × #removes of that target)).
    @inline(__always)
    func targetOf(_ r: Int32) -> Int32 { records[Int(r)].target }

    func computeMembers(included: [Bool]?) -> Set<MemberID> {
        guard createRecord >= 0 || base != nil else { return [] }
        @inline(__always) func isIn(_ r: Int32) -> Bool { included?[Int(r)] ?? true }
        var reachable = [Bool](repeating: false, count: records.count)
        var queue: [Int32] = []
        var result = Set<MemberID>()

        /// `m ≺ r`, where m may be the folded base (-1), which precedes every record.
        @inline(__always) func before(_ m: Int32, _ r: Int32) -> Bool { m < 0 || precedes(m, r) }
        /// Follows edges m1 → add(X→·) for the adds sent by X (m1 gave X its authority).
        func explore(from m1: Int32, authority x: Int32) {
            for m2 in addsBySender[Int(x)] where isIn(m2) && !reachable[Int(m2)] && before(m1, m2) {
                var revoked = removesOfTarget[Int(x)].contains { r in
                    isIn(r) && before(m1, r) && !precedes(m2, r)
                }
                #if DEBUG
                if PlantedDefects.isActive(.ignoreStrongRemoveStep3) { revoked = false }
                #endif
                if !revoked {
                    reachable[Int(m2)] = true
                    queue.append(m2)
                }
            }
        }
        /// Step 4 for one reachable add (or the root) that added `y`.
        func admit(_ m: Int32, _ y: Int32) {
            let removed = removesOfTarget[Int(y)].contains { r in isIn(r) && before(m, r) }
            if !removed { result.insert(memberIDs[Int(y)]) }
        }

        if let base {
            // The folded base is one root that gives authority to, and admits, Members(base).
            result.reserveCapacity(base.members.count)
            for x in base.members {
                explore(from: -1, authority: x)
                admit(-1, x)
            }
        } else {
            let root = records[Int(createRecord)]
            result.reserveCapacity(root.createMembers.count + 1)
            explore(from: createRecord, authority: root.sender)
            admit(createRecord, root.sender)
            for x in root.createMembers {
                explore(from: createRecord, authority: x)
                admit(createRecord, x)
            }
        }
        var head = 0
        while head < queue.count {
            let m = queue[head]
            head += 1
            let y = targetOf(m)
            explore(from: m, authority: y)
            admit(m, y)
        }
        return result
    }
}

/// The settled operations of a history, folded (§4.3): what they decide, not what they were.
struct FoldedBase: Sendable {
    /// Members(folded operations), by member index, increasing.
    var members: [Int32]
    /// Per sender, the highest seq of its folded operations; its folded operations are exactly
    /// its operations up to that seq (an operation follows its sender's earlier ones).
    var through: [Int32: UInt64]
    /// By member index: whether the member could send operations that count when the base was
    /// made. Such a member knows later operations only by acknowledging them.
    var introduced: [Bool]
}

/// Who knows one operation since when, by member index. Dense (an array indexed by member) while
/// that costs at most a few times the entries it holds, since membership views are evaluated for
/// every control message and this lookup is their inner loop; sparse (a dictionary) otherwise, so
/// a row never costs more memory than its entries justify, however high the member indexes a
/// crafted state uses (issue 8, item 4).
struct KnowledgeRow: Sendable, Sequence {
    /// Marks "does not know" in the dense form; no real seq reaches it (apply and the decoder reject it).
    static let unknown = UInt64.max
    /// A dense row holds at most `densityFactor × count + densitySlack` slots.
    static let densityFactor = 4
    static let densitySlack = 16
    private var seqs: [UInt64] = []
    private var sparse: [Int32: UInt64]?
    /// How many members know the operation.
    private(set) var count = 0

    subscript(member: Int32) -> UInt64? {
        get {
            if let sparse { return sparse[member] }
            let i = Int(member)
            guard i < seqs.count else { return nil }
            let seq = seqs[i]
            return seq == Self.unknown ? nil : seq
        }
        set {
            if sparse != nil {
                let old = sparse![member]
                sparse![member] = newValue
                count += (newValue == nil ? 0 : 1) - (old == nil ? 0 : 1)
                return
            }
            let i = Int(member)
            if i >= seqs.count {
                guard newValue != nil else { return }
                if i + 1 > Self.densityFactor * (count + 1) + Self.densitySlack {
                    var table: [Int32: UInt64] = [:]
                    table.reserveCapacity(count + 1)
                    for (m, seq) in self { table[m] = seq }
                    table[member] = newValue
                    sparse = table
                    seqs = []
                    count += 1
                    return
                }
                seqs.append(contentsOf: repeatElement(Self.unknown, count: i + 1 - seqs.count))
            }
            let old = seqs[i]
            seqs[i] = newValue ?? Self.unknown
            count += (newValue == nil ? 0 : 1) - (old == Self.unknown ? 0 : 1)
        }
    }

    var estimatedMemoryBytes: Int {
        seqs.capacity * 8 + (sparse.map { $0.capacity * (MemoryLayout<Int32>.stride + MemoryLayout<UInt64>.stride + 1) } ?? 0)
    }

    /// The known entries, `(member index, seq)`, in no particular order.
    func makeIterator() -> AnyIterator<(Int32, UInt64)> {
        if let sparse {
            var inner = sparse.makeIterator()
            return AnyIterator { inner.next().map { ($0.key, $0.value) } }
        }
        var inner = seqs.enumerated().makeIterator()
        return AnyIterator {
            while let (i, seq) = inner.next() { if seq != Self.unknown { return (Int32(i), seq) } }
            return nil
        }
    }
}

extension MembershipState: Equatable {
    /// Same operations and the same knowledge, however they were interned or in what order added.
    public static func == (lhs: MembershipState, rhs: MembershipState) -> Bool {
        guard lhs.records.count == rhs.records.count, lhs.createID == rhs.createID,
              (lhs.base == nil) == (rhs.base == nil) else { return false }
        if let l = lhs.base, let r = rhs.base {
            func ids(_ s: MembershipState, _ m: [Int32]) -> Set<MemberID> { Set(m.map { s.memberIDs[Int($0)] }) }
            guard ids(lhs, l.members) == ids(rhs, r.members),
                  Dictionary(uniqueKeysWithValues: l.through.map { (lhs.memberIDs[Int($0.key)], $0.value) })
                    == Dictionary(uniqueKeysWithValues: r.through.map { (rhs.memberIDs[Int($0.key)], $0.value) }),
                  Set(l.introduced.indices.filter { l.introduced[$0] }.map { lhs.memberIDs[$0] })
                    == Set(r.introduced.indices.filter { r.introduced[$0] }.map { rhs.memberIDs[$0] })
            else { return false }
        }
        guard lhs.cuts == rhs.cuts else { return false }
        for (i, rec) in lhs.records.enumerated() {
            guard let j = rhs.recordIndex[rec.op.id] else { return false }
            let known = lhs.knownOf[i], otherKnown = rhs.knownOf[Int(j)]
            guard rhs.records[Int(j)].op == rec.op, otherKnown.count == known.count else { return false }
            for (m, seq) in known {
                guard let om = rhs.memberIndex[lhs.memberIDs[Int(m)]], otherKnown[om] == seq else { return false }
            }
        }
        return true
    }
}

extension UInt64 {
    @inline(__always) mutating func formMax(_ other: UInt64) { if other > self { self = other } }
}
