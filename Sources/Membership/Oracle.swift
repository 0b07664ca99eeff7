public import DCGKAEncoding

/// A deliberately naive, literal implementation of §4.2, used as the test oracle (§4.3, §9) for the
/// incremental ``MembershipState``. Quadratic-to-cubic; for tests only.
public enum MembershipOracle {
    private enum Vertex: Hashable {
        /// Position in the create's chain: 0 is `add(c→c)`, i is `add(c→ID_i)`.
        case chain(Int)
        /// Position in the operations list.
        case op(Int)
    }

    private struct Add {
        var vertex: Vertex
        var sender: MemberID
        var target: MemberID
    }

    /// Members(H) for the operations `operations` under the order `precedes`. Empty unless there
    /// is exactly one create.
    public static func members(
        operations: [MembershipOperation],
        precedes: (OperationID, OperationID) -> Bool
    ) -> Set<MemberID> {
        members(operations: operations) { precedes(operations[$0].id, operations[$1].id) }
    }

    /// The same, with the order given on positions in `operations` (`precedes(i, j)`: operation
    /// `i` happened before operation `j`), for callers that keep ≺ as bit sets.
    public static func members(
        operations: [MembershipOperation],
        precedesAt precedes: (Int, Int) -> Bool
    ) -> Set<MemberID> {
        let creates = operations.indices.filter { if case .create = operations[$0].kind { true } else { false } }
        guard creates.count == 1, case .create(let listed) = operations[creates[0]].kind else { return [] }
        let create = creates[0]
        let creator = operations[create].id.sender

        // Step 1: the create becomes the chain add(c→c) ≺ add(c→ID1) ≺ … ≺ add(c→IDk).
        var adds = [Add(vertex: .chain(0), sender: creator, target: creator)]
        for (i, id) in listed.enumerated() {
            adds.append(Add(vertex: .chain(i + 1), sender: creator, target: id))
        }
        var removes: [(op: Int, target: MemberID)] = []
        for (index, op) in operations.enumerated() {
            switch op.kind {
            case .create: break
            case .add(let id): adds.append(Add(vertex: .op(index), sender: op.id.sender, target: id))
            case .remove(let id): removes.append((index, id))
            }
        }

        func before(_ a: Vertex, _ b: Vertex) -> Bool {
            switch (a, b) {
            case (.chain(let i), .chain(let j)): return i < j
            case (.chain, .op(let y)): return precedes(create, y)
            case (.op(let x), .chain): return precedes(x, create)
            case (.op(let x), .op(let y)): return precedes(x, y)
            }
        }

        // Step 2: edge add(X→Y) → add(Y→Z) whenever the first precedes the second.
        // Step 3: delete it if some remove(·, Y) r has m1 ≺ r and not m2 ≺ r.
        var edges = [[Int]](repeating: [], count: adds.count)
        for i in adds.indices {
            for j in adds.indices where i != j {
                let m1 = adds[i], m2 = adds[j]
                guard m1.target == m2.sender, before(m1.vertex, m2.vertex) else { continue }
                let deleted = removes.contains { r in
                    r.target == m1.target && before(m1.vertex, .op(r.op)) && !before(m2.vertex, .op(r.op))
                }
                if !deleted { edges[i].append(j) }
            }
        }

        // Reachability from m_init = add(c→c).
        var reachable = [Bool](repeating: false, count: adds.count)
        reachable[0] = true
        var queue = [0]
        while let i = queue.popLast() {
            for j in edges[i] where !reachable[j] {
                reachable[j] = true
                queue.append(j)
            }
        }

        // Step 4: IDs with a reachable add that no remove of them succeeds.
        var result = Set<MemberID>()
        for i in adds.indices where reachable[i] {
            let m = adds[i]
            let removed = removes.contains { r in r.target == m.target && before(m.vertex, .op(r.op)) }
            if !removed { result.insert(m.target) }
        }
        return result
    }

    /// Members over all of `state`'s operations, with ≺ from `state`.
    public static func members(of state: MembershipState) -> Set<MemberID> {
        members(operations: state.operations, precedes: state.precedes)
    }

    /// `member-view(sender)` at envelope `seq`, computed literally: the oracle on the operations
    /// `sender` knew at a seq ≤ `seq`.
    public static func members(of state: MembershipState, asSeenBy sender: MemberID, atSeq seq: UInt64) -> Set<MemberID> {
        let subset = state.operations.filter { op in
            state.knownSeq(of: op.id, by: sender).map { $0 <= seq } ?? false
        }
        return members(operations: subset, precedes: state.precedes)
    }
}
