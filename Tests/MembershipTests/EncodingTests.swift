import DCGKAEncoding
import Membership
import Testing

/// §8: one canonical encoding, total and bounded decoding.
@Suite struct EncodingTests {
    /// A small history with every kind of operation, acknowledgments and welcome knowledge.
    static func sample() throws -> MembershipState {
        var h = MembershipState()
        let create = try h.send(alice, 1, .create(members: [carol, bob]))
        try h.ack(create, by: bob, 1)
        try h.ack(create, by: carol, 1)
        let add = try h.send(bob, 2, .add(dave))
        try h.ack(add, by: alice, 2)
        try h.recordWelcome(of: dave, add: add, atSeq: 1)
        try h.send(alice, 3, .remove(carol))
        try h.send(dave, 300, .add(erin))
        return h
    }

    /// Histories produced by the simulation, for round trips and truncations.
    static func simulated(_ count: Int) -> [MembershipState] {
        (0..<count).map { i in
            var sim = GroupSimulation(seed: 0xE1C0_0000 + UInt64(i), size: 3 + i % 6)
            sim.oraclePercent = 0
            sim.run(maxOperations: 6)
            return sim.replicas[0].state
        }
    }

    @Test func emptyStateRoundTrips() throws {
        let empty = MembershipState()
        #expect(empty.wireBytes == [3, 0, 0, 0, 0])
        // The version before cuts is not read: it would re-encode to other bytes (a fuzz finding
        // of the welcome target, whose history is a membership state).
        #expect(throws: WireError.unsupportedVersion(2)) { try MembershipState(wireBytes: [2, 0, 0, 0]) }
        let decoded = try MembershipState(wireBytes: empty.wireBytes)
        #expect(decoded == empty && decoded.isEmpty && decoded.members().isEmpty)
    }

    @Test func operationsRoundTrip() throws {
        let ops = [
            MembershipOperation(id: OperationID(sender: alice, seq: 1), kind: .create(members: [carol, bob])),
            MembershipOperation(id: OperationID(sender: bob, seq: 200), kind: .add(dave)),
            MembershipOperation(id: OperationID(sender: bob, seq: 3), kind: .remove(alice)),
        ]
        for op in ops { #expect(try MembershipOperation(wireBytes: op.wireBytes) == op) }
        var bad = ops[1].wireBytes
        bad[34] = 7  // the tag, after a 32-byte sender and seq 200 (a two-byte varint)
        #expect(throws: WireError.unknownTag(field: "membership operation", tag: 7)) {
            try MembershipOperation(wireBytes: bad)
        }
        let twice = MembershipOperation(id: OperationID(sender: alice, seq: 1), kind: .create(members: [bob, bob]))
        #expect(throws: WireError.invalidValue(field: "membership operation")) {
            try MembershipOperation(wireBytes: twice.wireBytes)
        }
    }

    @Test func statesRoundTripCanonically() throws {
        for state in try [Self.sample()] + Self.simulated(40) {
            let bytes = state.wireBytes
            let decoded = try MembershipState(wireBytes: bytes)
            #expect(decoded == state)
            #expect(decoded.members() == state.members())
            #expect(decoded.wireBytes == bytes)
            for op in state.operations {
                for member in state.participants {
                    #expect(decoded.knownSeq(of: op.id, by: member) == state.knownSeq(of: op.id, by: member))
                }
            }
        }
    }

    /// Insertion order and interning order must not show in the encoding.
    @Test func encodingIsIndependentOfConstructionOrder() throws {
        let h = try Self.sample()
        var rebuilt = MembershipState()
        rebuilt.merge(try MembershipState(wireBytes: h.wireBytes))
        var viaMerge = MembershipState()
        try viaMerge.send(alice, 1, .create(members: [carol, bob]))
        viaMerge.merge(h)
        #expect(rebuilt.wireBytes == h.wireBytes)
        #expect(viaMerge.wireBytes == h.wireBytes)
    }

    @Test func everyTruncationIsATypedError() throws {
        for state in try [Self.sample()] + Self.simulated(8) {
            let bytes = state.wireBytes
            for length in 0..<bytes.count {
                #expect(throws: WireError.self) { try MembershipState(wireBytes: Array(bytes[..<length])) }
            }
            #expect(throws: WireError.trailingBytes(count: 1)) { try MembershipState(wireBytes: bytes + [0]) }
        }
    }

    /// Random byte strings, and valid encodings with a few bytes changed, either decode to a state
    /// whose encoding is exactly the input or fail with a `WireError`; never a crash.
    @Test func randomAndMutatedInputsAreTotal() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let valid = try Self.sample().wireBytes
        var accepted = 0
        for i in 0..<4_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<rng.below(80)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if rng.percent(50) && !bytes.isEmpty { bytes[0] = 1 }  // get past the version byte
            } else {
                bytes = valid
                for _ in 0..<1 + rng.below(3) { bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next()) }
            }
            do {
                let state = try MembershipState(wireBytes: bytes)
                #expect(state.wireBytes == bytes)
                #expect(state.members() == MembershipOracle.members(of: state))
                accepted += 1
            } catch {
                // A typed WireError is the only way to fail; the catch is typed by the decoder.
            }
        }
        #expect(accepted > 0)  // some mutations (e.g. of a known seq) stay valid
    }

    @Test func nonCanonicalAndInvalidInputsAreRejected() throws {
        let h = try Self.sample()
        let bytes = h.wireBytes
        #expect(throws: WireError.unsupportedVersion(1)) { try MembershipState(wireBytes: [1, 0, 0]) }
        // Member table not sorted: swap the first two IDs.
        var swapped = bytes
        swapped.replaceSubrange(2..<34, with: bytes[34..<66])
        swapped.replaceSubrange(34..<66, with: bytes[2..<34])
        #expect(throws: WireError.invalidValue(field: "membership.members order")) { try MembershipState(wireBytes: swapped) }
        // An unused member table entry.
        let unused = [3, 1] + alice.bytes + [0, 0, 0]
        #expect(throws: WireError.invalidValue(field: "membership.members unused")) { try MembershipState(wireBytes: unused) }
        // Counts beyond the limits or the input are rejected before allocating.
        #expect(throws: WireError.self) { try MembershipState(wireBytes: [3, 0xFF, 0xFF, 0xFF, 0x7F]) }
        #expect(throws: WireError.truncated) { try MembershipState(wireBytes: [3, 0x80, 0x80, 0x04]) }
        #expect(throws: WireError.self) { try MembershipState(wireBytes: [3, 0, 0, 0xC0, 0x84, 0x3D]) }
        // Operations only: no create.
        var noCreate = [UInt8]([3, 2]) + [alice, bob].sorted().flatMap(\.bytes)
        noCreate += [0, 1, 0, 1, 1, 1, 1, 0, 1, 0]  // one op: sender 0, seq 1, add member 1, known {0: 1}; no cuts
        #expect(throws: WireError.invalidValue(field: "membership.no create")) { try MembershipState(wireBytes: noCreate) }
    }

    /// The welcome grows with operations and members only: acknowledging the same operations again
    /// (or sending application messages, which never reach this state) adds nothing.
    @Test func sizeDoesNotGrowWithRepeatedKnowledge() throws {
        var h = try Self.sample()
        let before = h.wireBytes.count
        for op in h.operations { try h.recordAcknowledgment(of: op.id, by: alice, atSeq: 1_000) }
        let after = h.wireBytes.count
        for op in h.operations { try h.recordAcknowledgment(of: op.id, by: alice, atSeq: 2_000) }
        #expect(h.wireBytes.count == after)
        #expect(after - before <= 3 * h.operationCount)
    }
}
