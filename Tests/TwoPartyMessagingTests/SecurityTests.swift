import DCGKACrypto
import DCGKAEncoding
import Testing
import TwoPartyMessaging

/// Forward secrecy and post-compromise security of 2SM (§3, §9), checked by "corrupting" a
/// side: copying its whole 2SM state and prekey store, as an attacker with the device would.
@Suite("2SM forward secrecy and PCS")
struct SecurityTests {
    /// Forward secrecy: right after a side has decrypted a message, its state no longer holds any
    /// key that opens that message or any earlier one. The one exception is a message to a prekey:
    /// prekey secrets are kept until notAfter + grace (§2.3), and only after that deletion is the
    /// first message protected.
    @Test(arguments: [21, 22] as [UInt64])
    func snapshotAfterDecryptingCannotDecryptAgain(seed: UInt64) throws {
        var duo = Duo(seed: seed)
        var schedule = SeededRandom(seed: seed + 100)
        var inFlight: [[TwoPartyMessage]] = [[], []]
        var received: [[TwoPartyMessage]] = [[], []]  // by receiver
        var checked = 0
        for step in 0..<60 {
            let action = Int.random(in: 0..<4, using: &schedule)
            let side = action % 2
            if action < 2 {
                inFlight[side].append(try duo.send(side, [UInt8(step)]))
                continue
            }
            guard !inFlight[side].isEmpty else { continue }
            let message = inFlight[side].removeFirst()
            let receiver = 1 - side
            _ = try duo.receive(receiver, message)
            received[receiver].append(message)

            var snapshot = Snapshot(duo, side: receiver)
            for old in received[receiver] {
                let toPrekey = old.header.origin == .other && old.header.index == 0
                var attempt = snapshot.state
                let replayed = try? attempt.receive(
                    old, from: duo.ids[side], to: duo.ids[receiver], binding: duo.binding, prekeys: snapshot.prekeys)
                let opened = snapshot.anySecretOpens(old, sender: duo.ids[side], recipient: duo.ids[receiver], binding: duo.binding)
                if toPrekey {
                    #expect(replayed != nil && opened, "the prekey is still kept")
                } else {
                    #expect(replayed == nil, "step \(step): the snapshot re-decrypted a message")
                    #expect(!opened, "step \(step): a key for an already decrypted message is still held")
                }
                checked += 1
            }
            // Once the prekey has expired and been deleted, the first message is protected too.
            #expect(snapshot.prekeys.deleteExpired(now: Duo.notAfter + 101) == 1)
            for old in received[receiver] {
                let opened = snapshot.anySecretOpens(old, sender: duo.ids[side], recipient: duo.ids[receiver], binding: duo.binding)
                #expect(!opened, "step \(step): an expired prekey still opens the first message")
            }
        }
        #expect(checked > 100)
    }

    /// PCS: a snapshot of the corrupted side keeps reading what the other side sends until the
    /// corrupted side has sent a message and the other side has received it; from then on the
    /// other side encrypts to a key generated after the snapshot, and the snapshot (even one the
    /// attacker advances with every message it can read) is locked out. Checked with Alice and
    /// with Bob as the corrupted side, after several histories.
    @Test(arguments: [(0, 31), (1, 32), (0, 33), (1, 34)] as [(Int, UInt64)])
    func healingAfterTheCorruptedSideSends(corrupted: Int, seed: UInt64) throws {
        var duo = Duo(seed: seed)
        let healthy = 1 - corrupted
        // Some history: alternation, a one-sided burst, a concurrent pair.
        try duo.exchange(0, "1"); try duo.exchange(1, "2"); try duo.exchange(0, "3")
        for i in 0..<Int(seed % 4) { try duo.exchange(Int(seed + UInt64(i)) % 2, "burst") }
        let x = try duo.send(0, [1]), y = try duo.send(1, [2])
        _ = try duo.receive(1, x); _ = try duo.receive(0, y)

        var attacker = Snapshot(duo, side: corrupted)
        let info = (from: duo.ids[healthy], to: duo.ids[corrupted])

        // Before healing: everything the healthy side sends is readable with the snapshot.
        for i in 0..<3 {
            let message = try duo.send(healthy, Array("exposed \(i)".utf8))
            #expect(try duo.receive(corrupted, message) == Array("exposed \(i)".utf8))
            #expect(try attacker.state.receive(message, from: info.from, to: info.to, binding: duo.binding,
                                               prekeys: attacker.prekeys) == Array("exposed \(i)".utf8))
        }

        // The corrupted side sends (fresh keys from the device's own randomness) and it arrives.
        let healing = try duo.send(corrupted, Array("heal".utf8))
        #expect(!attacker.anySecretOpens(healing, sender: duo.ids[corrupted], recipient: duo.ids[healthy], binding: duo.binding),
                "the attacker cannot read the healing message, so it does not learn the new secret")
        #expect(try duo.receive(healthy, healing) == Array("heal".utf8))

        // After healing: nothing the healthy side sends is readable with the snapshot.
        for i in 0..<5 {
            let message = try duo.send(healthy, Array("safe \(i)".utf8))
            if i == 0 {
                #expect(message.header.origin == .other)
                #expect(message.header.index == duo.states[corrupted].nextIndex - 1, "to the key generated for the healing message")
                #expect(attacker.state.mySecretKeys[message.header.index!] == nil)
            }
            #expect(throws: TwoPartyError.self) {
                try attacker.state.receive(message, from: info.from, to: info.to, binding: duo.binding, prekeys: attacker.prekeys)
            }
            #expect(!attacker.anySecretOpens(message, sender: info.from, recipient: info.to, binding: duo.binding))
            #expect(try duo.receive(corrupted, message) == Array("safe \(i)".utf8))
        }

        // Messages in the other direction never depended on the corrupted side's secrets.
        let outgoing = try duo.send(corrupted, [0])
        #expect(!attacker.anySecretOpens(outgoing, sender: duo.ids[corrupted], recipient: duo.ids[healthy], binding: duo.binding))
        _ = try duo.receive(healthy, outgoing)
    }

    /// Without a message from the corrupted side there is no healing, however much the other
    /// side sends: 2SM heals per round trip, not per message.
    @Test func noHealingWithoutAReply() throws {
        var duo = Duo(seed: 35)
        try duo.exchange(0, "a"); try duo.exchange(1, "b")
        var attacker = Snapshot(duo, side: 1)
        for i in 0..<20 {
            let message = try duo.exchange(0, "one-way \(i)")
            #expect(try attacker.state.receive(message, from: duo.ids[0], to: duo.ids[1], binding: duo.binding,
                                               prekeys: attacker.prekeys) == Array("one-way \(i)".utf8))
        }
    }

    /// A state's encoding never contains a secret key that the state has deleted (used
    /// `mySks` entries, replaced received keys), on either side, at any point of a concurrent
    /// conversation.
    @Test func encodedStateHoldsNoDeletedSecret() throws {
        var duo = Duo(seed: 36)
        var schedule = SeededRandom(seed: 136)
        var inFlight: [[TwoPartyMessage]] = [[], []]
        var everHeld: [Set<[UInt8]>] = [[], []]
        var deletedCount = [0, 0]
        func currentSecrets(_ state: TwoPartyState) -> Set<[UInt8]> {
            Set(state.mySecretKeys.values.map(\.wireBytes) + (state.receivedSecretKey.map { [$0.wireBytes] } ?? []))
        }
        for _ in 0..<120 {
            let action = Int.random(in: 0..<4, using: &schedule)
            let side = action % 2
            if action < 2 {
                inFlight[side].append(try duo.send(side, [1, 2, 3]))
            } else if !inFlight[side].isEmpty {
                _ = try duo.receive(1 - side, inFlight[side].removeFirst())
            }
            for s in 0..<2 {
                let now = currentSecrets(duo.states[s])
                everHeld[s].formUnion(now)
                let encoded = duo.states[s].wireBytes
                let deleted = everHeld[s].subtracting(now)
                deletedCount[s] = deleted.count
                for secret in deleted {
                    #expect(!containsRun(encoded, secret), "side \(s) still stores a deleted secret")
                }
                for secret in now { #expect(containsRun(encoded, secret)) }
            }
        }
        #expect(deletedCount[0] > 10 && deletedCount[1] > 10)
    }
}
