@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import GroupMessaging
import KeyAgreement
import Testing

/// Issue 8, item 12: values that hold secrets print, debug-print and reflect as their type name
/// only, so no log or test failure carries a key; `Bytes32 ==` is constant time and still exact.
@Suite struct RedactionTests {
    @Test("secret-holding values show nothing of their secrets however they are printed")
    func redacted() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 9, names: ["A", "B", "C"], members: ["A", "B", "C"])
        _ = try net.update(by: "B")
        _ = try net.send(by: "A", "hello")
        net.settle()
        let group = net.group("A")
        let state = group.keyAgreement
        var secrets: [Bytes32] = Array(state.ratchets.values) + Array(state.memberSecrets.values)
        for channel in state.twoParty.values {
            secrets += channel.mySecretKeys.values.map(\.secretBytes32)
            if let key = channel.receivedSecretKeyBytes { secrets.append(key) }
        }
        secrets += net.people["A"]!.prekeys.entries.values.map(\.secret.secretBytes32)
        #expect(secrets.count >= 3)

        let values: [Any] = [
            group, state, group.messaging, net.people["A"]!.prekeys, net.people["A"]!.identity,
            state.twoParty.values.first!, net.people["A"]!.prekeys.entries.values.first!.secret,
        ]
        for value in values {
            var dumped = ""
            dump(value, to: &dumped)
            for text in [String(describing: value), String(reflecting: value), "\(value)", dumped] {
                #expect(text.contains("redacted"), "\(type(of: value)): \(text.prefix(120))")
                for secret in secrets {
                    #expect(!text.contains(secret.description) && !text.contains(secret.hex), "\(type(of: value)) shows a secret")
                }
            }
        }
    }

    @Test("Bytes32 equality and hashing see every byte")
    func equality() {
        let base = Bytes32([UInt8](0..<32))!
        #expect(base == Bytes32([UInt8](0..<32))!)
        for position in 0..<32 {
            var bytes = [UInt8](0..<32)
            bytes[position] ^= 0x80
            let other = Bytes32(bytes)!
            #expect(other != base, "byte \(position)")
            #expect(Set([base, other]).count == 2)
        }
    }
}
