@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import Testing

/// Issue 8, item 3 (in part): the welcome's frontier comes from the adder and may lie. The joiner
/// ignores its own entry (it numbers its own chain) and refuses heads beyond any seq; nothing in a
/// welcome can make it trap.
@Suite struct WelcomeFrontierTests {
    /// An add of D by A whose welcome carries `frontier`, made with A's real state.
    static func add(_ net: inout TestNetwork, frontier: Frontier) throws -> Envelope {
        let group = net.group("A")
        var state = group.keyAgreement
        let (seq, prev) = group.broadcast.nextOwnPosition()
        var context = WireWriter()
        context.write(frontier)
        context.writeArray(group.members.compactMap { group.bundles[$0] }.sorted { $0.identity < $1.identity })
        let output = try state.add(
            net.people["D"]!.bundle, seq: seq, welcomeContext: context.bytes,
            keys: KeyMaterial(prekeys: net.people["A"]!.prekeys, peerBundles: group.bundles), using: &net.rng)
        var body = output.body
        body.viewHash = KeyDerivations.viewHash(of: state.members, suite: group.suite.suite)  // as the group layer signs it
        return Envelope.sign(
            identity: net.people["A"]!.identity, suite: group.suite, groupID: group.groupID, seq: seq, prev: prev,
            kind: .add, acked: nil, payload: body.payload)
    }

    @Test("a frontier entry for the joiner itself is ignored: it numbers its own chain and can send")
    func ownEntryIgnored() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 2, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        var frontier = net.group("A").broadcast.frontier
        frontier.heads[net.id("D")] = Frontier.Head(seq: UInt64(Int64.max), hash: Bytes32([UInt8](repeating: 9, count: 32))!)
        let invitation = try Self.add(&net, frontier: frontier)
        var rng = SeededRandom(seed: 3)
        var (joined, output) = try Group.join(
            identity: net.people["D"]!.identity, invitation: invitation, prekeys: net.people["D"]!.prekeys,
            configuration: TestNetwork.configuration, using: &rng)
        #expect(output.envelopes.first?.seq == 1, "the welcome-ack is D's first envelope")
        #expect(joined.broadcast.nextOwnPosition().seq == 2)
        let message = try joined.send(text: "hello", prekeys: net.people["D"]!.prekeys, now: TestNetwork.now, using: &rng)
        #expect(message.last?.seq == 2)
    }

    @Test("a frontier head beyond the largest seq is refused, typed")
    func headBeyondLargestSeq() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 2, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        var frontier = net.group("A").broadcast.frontier
        frontier.heads[net.id("B")] = Frontier.Head(seq: UInt64.max, hash: Bytes32([UInt8](repeating: 9, count: 32))!)
        let invitation = try Self.add(&net, frontier: frontier)
        var rng = SeededRandom(seed: 3)
        let error = #expect(throws: GroupError.self) {
            _ = try Group.join(
                identity: net.people["D"]!.identity, invitation: invitation, prekeys: net.people["D"]!.prekeys,
                configuration: TestNetwork.configuration, using: &rng)
        }
        guard case .invalidInvitation(let why)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(why.contains("frontier.seq"))
    }
}
