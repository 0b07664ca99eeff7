import Foundation
import Testing
import DCGKATestSupport

// Direct links and the mesh (NETWORK.md §14.2, §14.3; issue 11 items 3 and 5) with real
// processes on loopback and no relay: `dcgka peer listen` and `dcgka peer connect`.

extension Home {
    /// `dcgka peer listen --listen 127.0.0.1:0 [--connect …]`, and the port it printed.
    fileprivate func listen(connect: [String] = []) throws -> (Spawned, String) {
        let spawned = try spawn(["peer", "listen", "--listen", "127.0.0.1:0"] + (connect.isEmpty ? [] : ["--connect"] + connect))
        guard let output = spawned.waitForOutput(timeout: 30, until: { $0.contains("listening on ") && $0.contains("\n") }),
              let line = output.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") })
        else {
            spawned.stop(grace: 5)
            throw CLI.Failure("\(name): peer listen printed no address: \(spawned.result())")
        }
        return (spawned, String(line.dropFirst("listening on ".count)))
    }

    fileprivate func texts(in group: String) -> [String] {
        ((try? log(group)) ?? []).filter(\.isMessage).map(\.text)
    }

    /// Polls the home's log until `condition` holds (at most `timeout` seconds).
    fileprivate func waitForTexts(_ group: String, timeout: Double = 30, _ condition: ([String]) -> Bool) -> [String]? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let texts = texts(in: group)
            if condition(texts) { return texts }
            usleep(100_000)
        }
        return nil
    }
}

@Suite("Direct links end to end: a chain of devices with no relay (issue 11)", .serialized)
struct PeerLinksEndToEndTests {
    @Test("A—B—C: Bob listens, Carol keeps a link to Bob, Alice makes one pass with Bob; the group and every message cross the chain both ways; a stranger gets nothing", .timeLimit(.minutes(5)))
    func chain() throws {
        let scratch = try Scratch("peer-chain")
        defer { scratch.remove() }
        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        let carol = try Home.create("carol", in: scratch)
        let stranger = try Home.create("mallory", in: scratch)
        for (a, b) in [(alice, bob), (alice, carol), (bob, carol)] { try Home.introduce(a, b) }

        let (bobListening, bobAddress) = try bob.listen()
        defer { bobListening.stop(grace: 5); bobListening.cleanUp() }
        let (carolListening, _) = try carol.listen(connect: [bobAddress])
        defer { carolListening.stop(grace: 5); carolListening.cleanUp() }

        // Alice creates the group and talks; one pass with Bob. Carol, who never links with
        // Alice, learns of the group from Bob (an invitation over the mesh) and reads it.
        _ = try alice.createGroup("Chain", with: ["bob", "carol"])
        try alice.must(["send", "Chain", "alice: over the chain"])
        let pass = try alice.must(["peer", "connect", bobAddress, "--peer", "bob", "--json"]).object()
        #expect((pass["sent"] as? Int ?? 0) >= 3, "\(pass)")
        #expect(bob.waitForTexts("Chain") { $0 == ["alice: over the chain"] } != nil, "Bob: \(bob.texts(in: "Chain"))")
        #expect(carol.waitForTexts("Chain") { $0 == ["alice: over the chain"] } != nil, "Carol: \(carol.texts(in: "Chain")); \(carolListening.result())")

        // Carol answers (while her listener runs, from another process on her home): it goes to
        // Bob live, and to Alice at her next pass.
        try carol.must(["send", "Chain", "carol: back along it"])
        #expect(bob.waitForTexts("Chain") { $0.contains("carol: back along it") } != nil, "Bob: \(bob.texts(in: "Chain"))")
        try alice.must(["peer", "connect", bobAddress])
        #expect(alice.texts(in: "Chain") == ["alice: over the chain", "carol: back along it"])

        // A stranger (no contact, no group) is turned away by Bob's listener.
        let refused = try stranger.run(["peer", "connect", bobAddress])
        #expect(refused.isOneLineRefusal, "\(refused)")
        // A wrong expected identity fails the handshake.
        let wrong = try alice.run(["peer", "connect", bobAddress, "--peer", "carol"])
        #expect(wrong.isOneLineRefusal, "\(wrong)")
    }

    @Test("dcgka chat --connect keeps a direct link: typed lines reach the peer live, the peer's messages appear in the chat", .timeLimit(.minutes(5)))
    func chatOverADirectLink() throws {
        let scratch = try Scratch("peer-chat")
        defer { scratch.remove() }
        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        try Home.introduce(alice, bob)
        _ = try alice.createGroup("Direct", with: ["bob"])
        let (bobListening, bobAddress) = try bob.listen()
        defer { bobListening.stop(grace: 5); bobListening.cleanUp() }
        let chat = try alice.spawn(["chat", "Direct", "--connect", bobAddress], pipeInput: true)
        defer { chat.stop(grace: 5); chat.cleanUp() }
        #expect(chat.waitForOutput(timeout: 30) { $0.contains("type a message") } != nil, "\(chat.result())")
        // The group reaches Bob over the chat's link; then a typed line does.
        #expect(bob.waitForTexts("Direct") { _ in (try? bob.members("Direct")) != nil } != nil)
        try chat.write("alice: typed in chat\n")
        #expect(bob.waitForTexts("Direct") { $0.contains("alice: typed in chat") } != nil, "Bob: \(bob.texts(in: "Direct"))")
        try bob.must(["send", "Direct", "bob: straight back"])
        #expect(chat.waitForOutput(timeout: 30) { $0.contains("bob: straight back") } != nil, "\(chat.result())")
        chat.closeInput()
        #expect(chat.wait(timeout: 30))
    }

    @Test("a carrier: Kim, not a member, carries the group between Alice and Bob, who never link; Kim reads nothing; a stranger to the group gets nothing from Kim", .timeLimit(.minutes(5)))
    func carrier() throws {
        let scratch = try Scratch("peer-carrier")
        defer { scratch.remove() }
        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        let kim = try Home.create("kim", in: scratch)
        let mallory = try Home.create("mallory", in: scratch)
        for (a, b) in [(alice, bob), (alice, kim), (bob, kim), (kim, mallory)] { try Home.introduce(a, b) }
        let group = try alice.createGroup("Carried", with: ["bob"])
        try alice.must(["send", "Carried", "alice: Kim carries this"])
        let granted = try alice.must(["group", "grant", "Carried", "kim", "--days", "7"]).stdout
        #expect(granted.contains("kim may carry"), "\(granted)")

        let (kimListening, kimAddress) = try kim.listen()
        defer { kimListening.stop(grace: 5); kimListening.cleanUp() }
        try alice.must(["peer", "connect", kimAddress])
        let listed = try kim.must(["group", "list"]).stdout
        #expect(listed.contains(String(group.prefix(12))) && listed.contains("carried for its members"), "\(listed)")

        // Bob never links with Alice: the group and her message reach him through Kim.
        try bob.must(["peer", "connect", kimAddress])
        #expect(bob.texts(in: "Carried") == ["alice: Kim carries this"], "Bob: \(bob.texts(in: "Carried"))")
        try bob.must(["send", "Carried", "bob: and back through Kim"])
        try bob.must(["peer", "connect", kimAddress])
        try alice.must(["peer", "connect", kimAddress])
        #expect(alice.texts(in: "Carried") == ["alice: Kim carries this", "bob: and back through Kim"])

        // Kim holds it and reads none of it; a contact of Kim's outside the group gets nothing.
        #expect(try kim.members(group) == nil, "Kim is not in the group")
        try mallory.must(["peer", "connect", kimAddress])
        #expect(try mallory.members(group) == nil)
        #expect(try mallory.must(["group", "list", "--json"]).array().isEmpty)
    }
}
