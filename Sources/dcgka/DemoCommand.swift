import ArgumentParser
import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import DCGKAGroup

/// A small group chatting in-process over a network that reorders everything: the README's main job.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Alice, Bob and Carol chat; Dave joins, Bob leaves; every envelope is reordered.")

    @Option(help: "Seed for keys and for the network's reordering.") var seed: UInt64 = 2021

    func run() throws {
        var world = DemoWorld(seed: seed)
        let names = ["Alice", "Bob", "Carol", "Dave"]
        for name in names { world.enroll(name) }

        print("== Alice creates a group with Bob and Carol")
        try world.create(by: "Alice", with: ["Bob", "Carol"])
        world.settle()
        try world.say("Alice", "Hi both, this group has no server that can read it.")
        try world.say("Bob", "Nice. Even the relay sees only ciphertext?")
        try world.say("Carol", "And if a relay is blocked we can switch to another one.")
        world.settle()

        print("== Carol adds Dave")
        try world.add(by: "Carol", "Dave")
        try world.say("Bob", "(Bob, sent while Dave's add is still in flight)")
        world.settle()
        try world.say("Dave", "Hello! I can read from my add on, not before.")
        world.settle()

        print("== Alice removes Bob, and updates her keys")
        try world.remove(by: "Alice", "Bob")
        world.settle()
        try world.update(by: "Alice")
        world.settle()
        try world.say("Alice", "Bob is gone; he cannot read this.")
        try world.say("Carol", "Confirmed, three of us now.")
        world.settle()

        world.printTranscripts()
    }
}

struct DemoWorld {
    struct Person {
        let name: String
        let identity: IdentityKey
        var prekeys: PrekeyStore
        let bundle: KeyBundle
        var group: Group?
        var transcript: [String] = []
        var unreadable = 0
    }

    static let now: UInt64 = 1_800_000_000
    var rng: SeededRandom
    var people: [String: Person] = [:]
    var order: [String] = []
    var inFlight: [(to: String, wire: [UInt8])] = []
    /// What a relay would store: every envelope sent, for members to sync from (§6.4).
    var relayLog: [Envelope] = []
    var groupID: GroupID?

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func enroll(_ name: String) {
        let identity = IdentityKey.generate(using: &rng)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: identity, notAfter: Self.now + 86_400, using: &rng)
        people[name] = Person(name: name, identity: identity, prekeys: prekeys, bundle: bundle)
        order.append(name)
    }

    func name(of id: MemberID) -> String { people.values.first { $0.identity.id == id }?.name ?? "\(id)" }

    mutating func create(by creator: String, with others: [String]) throws {
        let person = people[creator]!
        let (group, envelope) = try Group.create(
            identity: person.identity, ownBundle: person.bundle, members: others.map { people[$0]!.bundle }, prekeys: person.prekeys,
            now: Self.now, using: &rng)
        groupID = group.groupID
        people[creator]!.group = group
        broadcast(envelope, from: creator, alsoTo: others)
    }

    mutating func add(by adder: String, _ newcomer: String) throws {
        var group = people[adder]!.group!
        let envelopes = try group.add(people[newcomer]!.bundle, prekeys: people[adder]!.prekeys, now: Self.now, using: &rng)
        people[adder]!.group = group
        for refresh in envelopes.dropLast() { broadcast(refresh, from: adder) }
        broadcast(envelopes.last!, from: adder, alsoTo: [newcomer])
    }

    mutating func remove(by remover: String, _ member: String) throws {
        var group = people[remover]!.group!
        let envelope = try group.remove(people[member]!.identity.id, prekeys: people[remover]!.prekeys, using: &rng)
        people[remover]!.group = group
        broadcast(envelope, from: remover)
    }

    mutating func update(by member: String) throws {
        var group = people[member]!.group!
        let envelope = try group.update(prekeys: people[member]!.prekeys, using: &rng)
        people[member]!.group = group
        broadcast(envelope, from: member)
    }

    mutating func say(_ speaker: String, _ text: String) throws {
        var group = people[speaker]!.group!
        let envelopes = try group.send(text: text, prekeys: people[speaker]!.prekeys, now: Self.now, using: &rng)
        people[speaker]!.group = group
        people[speaker]!.transcript.append("me: \(text)")
        for envelope in envelopes { broadcast(envelope, from: speaker) }
    }

    /// Everyone who holds group state (and any invitee) gets the envelope, later, in random order.
    mutating func broadcast(_ envelope: Envelope, from sender: String, alsoTo invited: [String] = []) {
        relayLog.append(envelope)
        for name in order where name != sender && (people[name]!.group != nil || invited.contains(name)) {
            inFlight.append((name, envelope.wireBytes))
        }
    }

    /// Delivers everything in flight in a shuffled order, then lets every member sync what it
    /// still lacks from the relay's log (an envelope can arrive before the member could accept
    /// it, e.g. from someone whose add it has not seen yet), until nothing is left.
    mutating func settle() {
        var rounds = 0
        while rounds < 1_000 {
            rounds += 1
            inFlight.shuffle(using: &rng)
            let batch = inFlight
            inFlight = []
            for (to, wire) in batch { deliver(wire, to: to) }
            if !inFlight.isEmpty { continue }
            for name in order {
                guard let group = people[name]!.group else { continue }
                for envelope in relayLog where envelope.sender != group.me
                    && envelope.seq > group.broadcast.deliveredSeq(of: envelope.sender)
                    && !group.broadcast.isBuffered(envelope.hash) {
                    inFlight.append((name, envelope.wireBytes))
                }
            }
            if inFlight.isEmpty { break }
        }
    }

    mutating func deliver(_ wire: [UInt8], to name: String) {
        guard let groupID, let envelope = try? Envelope(wire: wire, groupID: groupID) else { return }
        var person = people[name]!
        let output: GroupOutput
        if var group = person.group {
            output = group.receive(envelope, prekeys: person.prekeys, using: &rng)
            person.group = group
        } else {
            guard let (group, joined) = try? Group.join(
                identity: person.identity, invitation: envelope, prekeys: person.prekeys, using: &rng) else { return }
            person.group = group
            output = joined
        }
        for event in output.events {
            switch event {
            case .joined(let by): person.transcript.append("* \(self.name(of: by)) brought me into the group")
            case .message(let from, _, let bytes):
                person.transcript.append("\(self.name(of: from)): \(String(decoding: bytes, as: UTF8.self))")
            case .expired(let from, _):
                person.transcript.append("\(self.name(of: from)): [expired before it reached me]")
            case .undecryptable(let from, _, _):
                person.unreadable += 1
                person.transcript.append("\(self.name(of: from)): [cannot decrypt]")
            case .membersAdded(let ids, let by):
                person.transcript.append("* \(self.name(of: by)) added \(ids.map { self.name(of: $0) }.joined(separator: ", "))")
            case .membersRemoved(let ids, let by):
                person.transcript.append("* \(self.name(of: by)) removed \(ids.map { self.name(of: $0) }.joined(separator: ", "))")
            case .removedFromGroup(let by): person.transcript.append("* \(self.name(of: by)) removed me")
            case .updated(let by): person.transcript.append("* \(self.name(of: by)) refreshed their keys")
            case .equivocation(let who): person.transcript.append("! \(self.name(of: who)) equivocated")
            case .fromNonMember(let who, _):
                person.transcript.append("! ignored an envelope of \(self.name(of: who)), who is no longer a member")
            case .rejected(.unknownSender): break  // from a member whose add has not reached me yet; synced later
            case .rejected(let error): person.transcript.append("! rejected an envelope: \(error)")
            case .lostRatchet(let who, _, let reason):
                person.transcript.append("! can no longer read \(self.name(of: who)): \(reason)")
            case .resyncRequested(let who, _):
                person.transcript.append("! \(self.name(of: who)) asked to resynchronise its keys")
            case .recovered(let who, _): person.transcript.append("* can read \(self.name(of: who)) again")
            case .processingFailed(let sender, let seq, let error):
                person.transcript.append("! could not process \(self.name(of: sender))#\(seq): \(error)")
            }
        }
        people[name] = person
        for envelope in output.envelopes { broadcast(envelope, from: name) }
    }

    func printTranscripts() {
        for name in order {
            let person = people[name]!
            let members = person.group.map { $0.members.map { self.name(of: $0) }.sorted().joined(separator: ", ") } ?? "-"
            print("\n--- \(name) sees (members in \(name)'s view: \(members))")
            for line in person.transcript { print("  \(line)") }
            print("  (\(person.unreadable) message(s) \(name) could not read)")
        }
    }
}
