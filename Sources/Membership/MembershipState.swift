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
    static let encodingVersion: UInt8 = 1

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
    var createRecord: Int32 = -1

    // Per-member bookkeeping, indexed by member index.
    var addsBySender: [[Int32]] = []
    var removesOfTarget: [[Int32]] = []
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

    /// An empty history.
    public init() {}

    public var isEmpty: Bool { records.isEmpty }
    public var operationCount: Int { records.count }

    /// The create, if the history has one (every non-empty history has exactly one).
    public var create: MembershipOperation? { createRecord >= 0 ? records[Int(createRecord)].op : nil }

    /// All operations, sorted by ID.
    public var operations: [MembershipOperation] { records.map(\.op).sorted { $0.id < $1.id } }

    /// Every ID that appears in an operation, sorted.
    public var participants: [MemberID] { memberIDs.sorted() }

    public func contains(_ op: OperationID) -> Bool { recordIndex[op] != nil }

    public func operation(_ id: OperationID) -> MembershipOperation? {
        recordIndex[id].map { records[Int($0)].op }
    }

    /// The seq from which `member` knows `op`, if it does.
    public func knownSeq(of op: OperationID, by member: MemberID) -> UInt64? {
        guard let r = recordIndex[op], let m = memberIndex[member] else { return nil }
        return knownOf[Int(r)][m]
    }

    public func isKnownParticipant(_ id: MemberID) -> Bool { memberIndex[id] != nil }

    /// `a ≺ b` (§4.1). False when either is unknown, and never true for `a == b`.
    public func precedes(_ a: OperationID, _ b: OperationID) -> Bool {
        guard let ra = recordIndex[a], let rb = recordIndex[b] else { return false }
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
        guard createRecord >= 0, let s = memberIndex[sender] else { return nil }
        let si = Int(s)
        if knownCount[si] == records.count && maxKnownSeq[si] <= seq { return [] }
        var left: [Int32] = []
        for i in records.indices {
            if let k = knownOf[i][s], k <= seq { continue }
            left.append(Int32(i))
        }
        return left
    }

    /// Members over every record except `left`.
    func members(without left: [Int32]) -> Set<MemberID> {
        var included = [Bool](repeating: true, count: records.count)
        for i in left { included[Int(i)] = false }
        return included[Int(createRecord)] ? computeMembers(included: included) : []
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

    // MARK: Mutation

    /// Adds a processed create/add/remove. Its sender knows it from its own seq (`op.id.seq`) on.
    public mutating func apply(_ op: MembershipOperation) throws(MembershipError) {
        guard op.id.seq >= 1, op.id.seq < KnowledgeRow.unknown else { throw .invalidSequenceNumber(op.id.seq) }
        guard recordIndex[op.id] == nil else { throw .duplicateOperation(op.id) }
        guard records.count < Self.maxOperations, newParticipants(of: op) + memberIDs.count <= Self.maxMembers
        else { throw .limitExceeded }
        if case .create = op.kind {
            guard createRecord < 0 else { throw .secondCreate(op.id) }
            guard op.isWellFormed else { throw .invalidCreate(op.id) }
        } else {
            guard createRecord >= 0 else { throw .noCreate }
            let create = records[Int(createRecord)].op.id
            // An operation of the creator from before its create would precede the create.
            if op.id.sender == create.sender && op.id.seq < create.seq {
                throw .invalidSequenceNumber(op.id.seq)
            }
        }
        var lowered: [Int32] = []
        insert(op, lowered: &lowered)
        recomputeMembers()
    }

    /// `member` acknowledged (ack / add-ack) `op` in its envelope `seq`: from `seq` on it knows `op`.
    /// Keeps the smaller seq if recorded twice. Returns what ``undo(_:)`` needs to take it back,
    /// so a caller that must be able to roll back need not copy the whole state first.
    @discardableResult
    public mutating func recordAcknowledgment(
        of op: OperationID, by member: MemberID, atSeq seq: UInt64
    ) throws(MembershipError) -> AcknowledgmentUndo {
        guard let r = recordIndex[op] else { throw .unknownOperation(op) }
        guard let m = memberIndex[member] else { throw .unknownParticipant(member) }
        try checkKnowledgeSeq(seq, member: m)
        let undo = AcknowledgmentUndo(
            record: r, member: m, known: knownOf[Int(r)][m], knownCount: knownCount[Int(m)],
            maxKnownSeq: maxKnownSeq[Int(m)], members: cachedMembers)
        var lowered: [Int32] = []
        let changed = setKnown(record: r, member: m, seq: seq, lowered: &lowered)
        finishLowered(lowered)
        if changed && maxOpSeq[Int(m)] > seq { recomputeMembers() }
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
        knownOf[Int(undo.record)][undo.member] = undo.known
        knownCount[Int(undo.member)] = undo.knownCount
        maxKnownSeq[Int(undo.member)] = undo.maxKnownSeq
        cachedMembers = undo.members
        viewCache.removeAll()
    }

    /// `member` processed the welcome of its add `add` and sent its welcome-ack at `seq`: every
    /// operation that precedes `add`, and `add` itself, is known to `member` from `seq` on (smaller
    /// existing values are kept). Call it after merging the adder's state.
    public mutating func recordWelcome(
        of member: MemberID, add: OperationID, atSeq seq: UInt64
    ) throws(MembershipError) {
        guard let a = recordIndex[add] else { throw .unknownOperation(add) }
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
        if isEmpty { self = other; return }
        for rec in other.records {
            if let i = recordIndex[rec.op.id] {
                guard records[Int(i)].op == rec.op else { throw .conflictingOperation(rec.op.id) }
            } else if case .create = rec.op.kind {
                throw .conflictingOperation(rec.op.id)  // self already has a different create
            }
        }
        let newOps = other.records.reduce(0) { $0 + (recordIndex[$1.op.id] == nil ? 1 : 0) }
        let newMembers = other.memberIDs.reduce(0) { $0 + (memberIndex[$1] == nil ? 1 : 0) }
        guard records.count + newOps <= Self.maxOperations, memberIDs.count + newMembers <= Self.maxMembers
        else { throw .limitExceeded }
        var lowered: [Int32] = []
        for (o, rec) in other.records.enumerated() {
            let r = recordIndex[rec.op.id] ?? insert(rec.op, lowered: &lowered)
            for (om, seq) in other.knownOf[o] {
                let m = intern(other.memberIDs[Int(om)])
                _ = setKnown(record: r, member: m, seq: seq, lowered: &lowered)
            }
        }
        finishLowered(lowered)
        recomputeMembers()
    }

    // MARK: Internals

    /// Seqs start at 1, and nobody may know anything from before the creator's create at the
    /// creator's side (that would put an operation before the create, which must be minimal).
    func checkKnowledgeSeq(_ seq: UInt64, member m: Int32) throws(MembershipError) {
        guard seq >= 1, seq < KnowledgeRow.unknown else { throw .invalidSequenceNumber(seq) }
        if createRecord >= 0 {
            let create = records[Int(createRecord)]
            if m == create.sender && seq < create.op.id.seq { throw .invalidSequenceNumber(seq) }
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
        removesOfTarget.append([])
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
        var target: Int32 = -1
        var createMembers: [Int32] = []
        switch op.kind {
        case .create(let members):
            createMembers.reserveCapacity(members.count)
            for member in members { createMembers.append(intern(member)) }
            createRecord = r
        case .add(let id):
            target = intern(id)
            addsBySender[Int(sender)].append(r)
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
        cachedMembers = computeMembers(included: nil)
        viewCache.removeAll()
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
        guard createRecord >= 0 else { return [] }
        @inline(__always) func isIn(_ r: Int32) -> Bool { included?[Int(r)] ?? true }
        var reachable = [Bool](repeating: false, count: records.count)
        var queue: [Int32] = []
        var result = Set<MemberID>()

        /// Follows edges m1 → add(X→·) for the adds sent by X (m1 gave X its authority).
        func explore(from m1: Int32, authority x: Int32) {
            for m2 in addsBySender[Int(x)] where isIn(m2) && !reachable[Int(m2)] && precedes(m1, m2) {
                var revoked = removesOfTarget[Int(x)].contains { r in
                    isIn(r) && precedes(m1, r) && !precedes(m2, r)
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
            let removed = removesOfTarget[Int(y)].contains { r in isIn(r) && precedes(m, r) }
            if !removed { result.insert(memberIDs[Int(y)]) }
        }

        let root = records[Int(createRecord)]
        result.reserveCapacity(root.createMembers.count + 1)
        explore(from: createRecord, authority: root.sender)
        admit(createRecord, root.sender)
        for x in root.createMembers {
            explore(from: createRecord, authority: x)
            admit(createRecord, x)
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

/// Who knows one operation since when, indexed by member index. Dense, because membership views
/// are evaluated for every control message and this lookup is their inner loop.
struct KnowledgeRow: Sendable, Sequence {
    /// Marks "does not know"; no real seq reaches it (apply and the decoder reject it).
    static let unknown = UInt64.max
    private var seqs: [UInt64] = []
    /// How many members know the operation.
    private(set) var count = 0

    subscript(member: Int32) -> UInt64? {
        get {
            let i = Int(member)
            guard i < seqs.count else { return nil }
            let seq = seqs[i]
            return seq == Self.unknown ? nil : seq
        }
        set {
            let i = Int(member)
            if i >= seqs.count {
                guard newValue != nil else { return }
                seqs.append(contentsOf: repeatElement(Self.unknown, count: i + 1 - seqs.count))
            }
            let old = seqs[i]
            seqs[i] = newValue ?? Self.unknown
            count += (newValue == nil ? 0 : 1) - (old == Self.unknown ? 0 : 1)
        }
    }

    /// The known entries, `(member index, seq)`, by member index.
    func makeIterator() -> some IteratorProtocol<(Int32, UInt64)> {
        seqs.enumerated().lazy.filter { $0.element != Self.unknown }.map { (Int32($0.offset), $0.element) }.makeIterator()
    }
}

extension MembershipState: Equatable {
    /// Same operations and the same knowledge, however they were interned or in what order added.
    public static func == (lhs: MembershipState, rhs: MembershipState) -> Bool {
        guard lhs.records.count == rhs.records.count else { return false }
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
