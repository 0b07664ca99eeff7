internal import Foundation
internal import DCGKAEncoding
internal import DCGKACrypto
internal import Device
internal import CausalBroadcast

/// The switching scenario of NETWORK.md §14 (issue 11) as a seeded simulation on a
/// ``DeviceNetwork``: each person is a device on its own SQLite database, the relays are the
/// relay's own per-link logic on its SQLite store, links are memory links that carry §11 frames
/// through the device's own pass (the one `dcgka sync` and `dcgka peer` run), and files are the
/// device's own export and import. The seed decides the operations, who syncs
/// when, the relay policies, who is added and removed, the order of the chain and where links
/// are cut; every check is made at the end.
///
/// Phases: (1) everyone on the company relay; (2) a member posts the home relay, devices take it
/// up by policy; (3) the company relay dies while a member adds the offline people and another
/// member removes someone, concurrently; (4) the home relay dies, the online members link in a
/// chain (neighbours only), some passes cut midway; (5) the offline people get everything by a
/// file that hops from a chain member to the first of them, from that one to the next, and so on.
/// Five people are four online and one offline; of more, every second one beyond five is offline
/// too (six: five and one, seven: five and two, eight: six and two).
///
/// With an adversary (`--adversary`), a chain member turns malicious in phase 4: a copy of its
/// device shows its chain neighbour a message other than the one the device sends everyone else
/// at the same seq (an equivocation, which every honest member must come to report, the offline
/// person through its file), and it pushes forged envelopes (another member's with a changed
/// byte, its own with a changed payload, and noise) to its other neighbour, which must refuse
/// them without storing or passing on anything. Its honest device stops operating after the
/// fork; the checks are made over the honest members (see PROTOCOL-NOTES.md, Transports).
public struct SwitchingSimulation: Sendable {
    public struct Configuration: Sendable {
        /// People, at least 5: the last `offline` of them are offline throughout, the rest online.
        public var members: Int
        public var operations: Int
        public var seed: UInt64
        /// Whether the offline people get their files (a test turns it off to see the checks fail).
        public var deliversFile = true
        /// Whether a chain member turns malicious in phase 4.
        public var adversary = false
        /// Whether the member whose device is seized heals with an update (a test turns it off to
        /// see the post-compromise check fail).
        public var heals = true

        public init(members: Int = 5, operations: Int = 60, seed: UInt64 = 1) {
            self.members = members
            self.operations = operations
            self.seed = seed
        }
    }

    public struct Check: Sendable, Codable, Equatable {
        public var name: String
        public var ok: Bool
        public var detail: String
    }

    public struct Report: Sendable, Codable {
        public var ok: Bool
        public var members: Int
        public var operations: Int
        public var seed: UInt64
        public var messages: Int
        public var passes: Int
        public var cutPasses: Int
        public var chain: [String]
        /// Who carried the file to whom: a chain member, then each offline person in turn.
        public var file: [String]
        /// The offline people, added while someone was removed.
        public var added: String
        public var removed: String
        /// The malicious member, with `--adversary`.
        public var adversary: String?
        /// Attacks made, and how many of them the honest members detected.
        public var attacks: Int
        public var detected: Int
        public var checks: [Check]

        /// A few lines for a person.
        public var summary: String {
            var lines = [
                "switching scenario: \(members) people, \(operations) operations, seed \(seed)",
                "  \(messages) messages, \(passes) sync passes (\(cutPasses) cut midway); chain \(chain.joined(separator: "—")); \(added) added while \(removed) was removed; file \(file.joined(separator: " → "))",
            ]
            if let adversary { lines.append("  adversary \(adversary): \(attacks) attacks, \(detected) detected") }
            for check in checks { lines.append("  \(check.ok ? "ok  " : "FAIL") \(check.name): \(check.detail)") }
            lines.append(ok ? "all checks hold" : "SOME CHECKS FAILED")
            return lines.joined(separator: "\n")
        }
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) { self.configuration = configuration }

    /// Runs the scenario with its databases in `folder` (created and left for the caller).
    public func run(in folder: String) async throws -> Report {
        var world = try World(configuration, folder: folder)
        return try await world.run()
    }
}

struct Sent {
    var sender: Int
    var text: String
    /// The sender's view when it sent, without itself: who must read it, and nobody else.
    var readers: Set<MemberID>
    /// The sender had processed the snapshotted member's healing update when it sent: a
    /// snapshot taken before that update must not read it (post-compromise security).
    var afterHeal = false
    /// Sent in the closing round, when everyone had everything: its readers decrypting it shows
    /// they derived the sender's current epoch.
    var closing = false
}

/// A copy of one member's device taken mid-run (a seized phone), and the update with which the
/// member healed right after.
struct Compromise {
    var victim: Int
    var snapshot: NetworkDevice
    /// The healing update (without one, the victim's last envelope before the seizure).
    var update: EnvelopeReference
    /// How many messages had been sent when the device was seized.
    var sentBefore: Int
}

/// What the adversary did, for the checks.
struct Attacks {
    var adversary: Int
    /// The neighbour shown the other side of the fork, and the one sent forgeries.
    var forkedTo: Int
    var forgedTo: Int
    /// Forged wires pushed, and how many the neighbour refused.
    var forgeries: [[UInt8]] = []
    var refused = 0
}

struct World {
    let configuration: SwitchingSimulation.Configuration
    var random: SeededRandom
    var network: DeviceNetwork
    var group: GroupID?
    var sent: [Sent] = []
    var attacks: Attacks?
    var compromise: Compromise?

    var clock: NetworkClock { network.clock }
    var names: [String] { network.names }
    var ids: [MemberID] { network.ids }
    /// The people offline throughout: one of five, and every second one beyond five.
    var offline: [Int] { Array((configuration.members - 1 - max(0, configuration.members - 5) / 2)..<configuration.members) }
    var online: [Int] { Array(0..<offline[0]) }

    init(_ configuration: SwitchingSimulation.Configuration, folder: String) throws {
        self.configuration = configuration
        random = SeededRandom(seed: configuration.seed)
        let names = (0..<configuration.members).map { $0 < 26 ? String(UnicodeScalar(UInt8(65 + $0))) : "P\($0)" }
        network = try DeviceNetwork(names, .init(storage: .files(in: folder), randomness: .seeded(configuration.seed)))
        // The relays' keys come from the seeds they had before the harness, so reports of a seed stay the same.
        for label in ["company", "home"] { try network.addRelay(label, keySeed: configuration.seed &+ UInt64(label.utf8.count)) }
    }

    // MARK: Links (each moves the clock one second)

    /// One pass between two devices over a memory link, perhaps cut after `budget` messages.
    mutating func pass(_ a: Int, _ b: Int, budget: Int? = nil) async throws {
        try await network.pass(a, b, budget: budget)
        clock.advance()
    }

    /// A device syncs with every live relay it uses (`dcgka sync`).
    mutating func sync(_ person: Int) async throws {
        try await network.sync(person)
        clock.advance()
    }

    // MARK: Operations

    func view(_ person: Int) throws -> Set<MemberID>? {
        guard let group else { return nil }
        return try network.view(person, group)
    }

    /// A message, an update, or nothing, from a random online member (in its own view); a
    /// malicious member's device is past operating once it forked.
    mutating func operate(_ step: Int, among people: [Int]) throws {
        guard let group else { return }
        let candidates = try people.filter { try view($0) != nil && $0 != attacks?.adversary }
        guard !candidates.isEmpty else { return }
        let person = candidates[Int(random.next() % UInt64(candidates.count))]
        if random.next() % 10 < 8 {
            let text = "m\(step) from \(names[person])"
            let readers = try view(person)!.subtracting([ids[person]])
            try network[person].send(text: text, to: group)
            sent.append(Sent(sender: person, text: text, readers: readers, afterHeal: try hasHealed(person)))
        } else {
            try network[person].update(group)
        }
        clock.advance()
    }

    /// Whether `person` processed the compromised member's healing update.
    func hasHealed(_ person: Int) throws -> Bool {
        guard let compromise, let group else { return false }
        let update = compromise.update
        return try network[person].holdings(of: group).chains[update.sender]?[update.seq] == update.hash
    }

    mutating func someoneSyncs(among people: [Int]) async throws {
        let count = 1 + Int(random.next() % 3)
        for _ in 0..<count { try await sync(people[Int(random.next() % UInt64(people.count))]) }
    }

    // MARK: The scenario

    mutating func run() async throws -> SwitchingSimulation.Report {
        let steps = max(configuration.operations, 10)
        let company = try network.relayAddress("company"), home = try network.relayAddress("home")
        for person in online { try network[person].addRelay(company) }

        // (1) Everyone on the company relay.
        group = try network[0].createGroup(title: "Newsroom", with: online.dropFirst().map { ids[$0] })
        for _ in 0..<2 { for person in online { try await sync(person) } }
        var step = 0
        while step < steps * 3 / 10 {
            try operate(step, among: online)
            try await someoneSyncs(among: online)
            step += 1
        }

        // (2) A member posts the home relay; policies decide; those who ask accept later.
        let policies: [RelayPolicy] = [.ask, .contacts, .always]
        var asking: [Int] = []
        for person in online.dropFirst() {
            let policy = policies[Int(random.next() % 3)]
            try network[person].setRelayPolicy(policy)
            if policy == .ask { asking.append(person) }
        }
        let poster = online[Int(random.next() % UInt64(online.count))]
        if try view(poster) != nil, let group { try network[poster].setRelays([home], for: group) }
        for _ in 0..<2 { for person in online { try await sync(person) } }
        for person in asking { try network[person].acceptRelay(home) }
        // Whoever still does not use it (the poster's list may have lost to nobody's) is given it.
        for person in online {
            if try !network[person].relays().contains(where: { $0.relay == home.relay }) { try network[person].acceptRelay(home) }
        }
        while step < steps / 2 {
            try operate(step, among: online)
            try await someoneSyncs(among: online)
            step += 1
        }
        for _ in 0..<2 { for person in online { try await sync(person) } }
        // A member's device is copied (seized), and the member heals with an update.
        if let group {
            let victim = try online.filter { try view($0) != nil }.last ?? online[0]
            let snapshot = try network.clone(names[victim])
            if configuration.heals { try network[victim].update(group) }
            if let (seq, hash) = try network[victim].holdings(of: group).chains[ids[victim]]?.max(by: { $0.key < $1.key }) {
                compromise = Compromise(
                    victim: victim, snapshot: snapshot, update: EnvelopeReference(sender: ids[victim], seq: seq, hash: hash), sentBefore: sent.count)
            }
            clock.advance()
        }

        // (3) The company relay dies; concurrently one member adds the offline person and
        // another removes someone.
        try network.killRelay("company")
        let members = try online.filter { try view($0) != nil }
        let adder = members[Int(random.next() % UInt64(members.count))]
        let others = members.filter { $0 != adder }
        let remover = others[Int(random.next() % UInt64(others.count))]
        let targets = members.filter { $0 != adder && $0 != remover }
        let removed = targets[Int(random.next() % UInt64(targets.count))]
        if let group {
            for person in offline { try network[adder].add(ids[person], to: group) }
            try network[remover].remove(ids[removed], from: group)
        }
        clock.advance()
        while step < steps * 7 / 10 {
            try operate(step, among: online)
            try await someoneSyncs(among: online)
            step += 1
        }
        for _ in 0..<3 { for person in online { try await sync(person) } }

        // (4) The home relay dies: a chain of direct links between neighbours, some passes cut.
        try network.killRelay("home")
        var chain = online
        chain.shuffle(using: &random)
        let forkAt = step + (steps - step) / 3
        while step < steps {
            if configuration.adversary, step == forkAt, attacks == nil { try turnMalicious(chain: chain, removed: removed) }
            try operate(step, among: online)
            let link = Int(random.next() % UInt64(chain.count - 1))
            let cut = random.next() % 5 == 0 ? Int(1 + random.next() % 20) : nil
            try await pass(chain[link], chain[link + 1], budget: cut)
            step += 1
        }
        try await settle(chain)
        if attacks != nil {
            // Time passes: a member the equivocation rule did not name removes the adversary
            // itself once the delay is over (the named one may be offline), then the chain settles.
            clock.advance(Device<SeededRandom>.equivocatorRemovalDelay + 1)
            try await settle(chain)
        }

        // Closing words: every online member of the final view speaks once more, and the chain
        // settles again; that everyone reads them shows everyone derived every current epoch.
        if let group {
            for person in chain where try view(person) != nil && person != attacks?.adversary {
                let text = "closing words from \(names[person])"
                let readers = try view(person)!.subtracting([ids[person]])
                try network[person].send(text: text, to: group)
                sent.append(Sent(sender: person, text: text, readers: readers, afterHeal: try hasHealed(person), closing: true))
            }
            try await settle(chain)
        }

        // (5) The offline people get everything by a file that hops from a chain member to the
        // first of them, from that one (who joined by it) to the next, and so on.
        let carrier = chain[Int(random.next() % UInt64(chain.count))]
        if let group, configuration.deliversFile {
            var from = carrier
            for person in offline {
                let bytes = try network.file(from: from, groups: [group], protection: .participants(among: [ids[person]]))
                try network.carry(bytes, to: names[person])
                from = person
            }
        }

        var checks = try check(removed: removed)
        var detected = 0
        if let attacks {
            let adversaryChecks = try check(attacks, removed: removed)
            detected = adversaryChecks.detected
            checks += adversaryChecks.checks
        }
        return SwitchingSimulation.Report(
            ok: checks.allSatisfy(\.ok), members: configuration.members, operations: steps, seed: configuration.seed,
            messages: sent.count, passes: network.passes, cutPasses: network.cutPasses, chain: chain.map { names[$0] },
            file: ([carrier] + offline).map { names[$0] },
            added: offline.map { names[$0] }.joined(separator: ", "), removed: names[removed], adversary: attacks.map { names[$0.adversary] },
            attacks: attacks.map { 1 + $0.forgeries.count } ?? 0, detected: detected, checks: checks)
    }

    // MARK: The adversary

    /// A chain member (not the removed one) turns malicious: a copy of its device sends one
    /// neighbour another message at the seq of the device's next one (the neighbour takes it in
    /// by a file before it links again), and the other neighbour is pushed forgeries.
    mutating func turnMalicious(chain: [Int], removed: Int) throws {
        guard let group else { return }
        let candidates = try (0..<chain.count).filter { try chain[$0] != removed && view(chain[$0]) != nil }
        guard !candidates.isEmpty else { return }
        let position = candidates[Int(random.next() % UInt64(candidates.count))]
        let adversary = chain[position]
        let left = position > 0 ? chain[position - 1] : nil, right = position + 1 < chain.count ? chain[position + 1] : nil
        guard let forkedTo = left ?? right else { return }
        let forgedTo = right ?? forkedTo
        var attacks = Attacks(adversary: adversary, forkedTo: forkedTo, forgedTo: forgedTo)

        var copy = try network.clone(names[adversary])
        try network[adversary].send(text: "\(names[adversary]): what everyone sees", to: group)
        try copy.send(text: "\(names[adversary]): what only \(names[forkedTo]) sees", to: group)
        try network.carry(try copy.exportFile(groups: [group], protection: .plain).bytes, to: names[forkedTo])

        // Forgeries: another member's envelope with its last byte changed (its signature no
        // longer holds), the adversary's own newest with a payload byte changed, and noise.
        let wires = try network[adversary].log(of: group, after: 0, limit: 100_000).wires
        let ids = ids
        let others = wires.filter { wire in (try? Envelope(wire: wire, groupID: group)).map { $0.sender != ids[adversary] } ?? false }
        if var stolen = others.last {
            stolen[stolen.count - 1] ^= 0x01
            attacks.forgeries.append(stolen)
        }
        if var own = wires.last(where: { wire in (try? Envelope(wire: wire, groupID: group)).map { $0.sender == ids[adversary] } ?? false }) {
            own[own.count / 2] ^= 0x80
            attacks.forgeries.append(own)
        }
        attacks.forgeries.append((0..<96).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        let report = try network[forgedTo].receive(attacks.forgeries.map { ReceivedEnvelope(group: group, wire: $0) })
        attacks.refused = report.rejected
        self.attacks = attacks
        clock.advance()
    }

    /// The adversary's attacks, each detected by the honest members it reached.
    func check(_ attacks: Attacks, removed: Int) throws -> (checks: [SwitchingSimulation.Check], detected: Int) {
        guard let group else { return ([], 0) }
        let adversaryID = ids[attacks.adversary]
        // Every honest member of the final view reports the equivocation (the offline person
        // through the evidence in its file).
        let honest = (online + offline).filter { $0 != attacks.adversary && $0 != removed }
        let unaware = try honest.filter { person in
            try !network[person].history(of: group).contains { $0.event == "equivocation" && $0.sender == adversaryID }
        }
        // Forgeries are refused where they arrive and are nowhere in a log.
        let forged = Set(attacks.forgeries.compactMap { try? Envelope(wire: $0, groupID: group).hash })
        let stored = try network.devices.indices.filter { index in
            !forged.isDisjoint(with: try network[index].holdings(of: group).chains.flatMap { $0.value.values })
        }
        let checks: [SwitchingSimulation.Check] = [
            .init(name: "equivocation reported", ok: unaware.isEmpty,
                  detail: unaware.isEmpty ? "all \(honest.count) honest members report \(names[attacks.adversary])'s fork, shown only to \(names[attacks.forkedTo])"
                      : "not reported by \(unaware.map { names[$0] }.joined(separator: ", "))"),
            .init(name: "forgeries refused", ok: attacks.refused == attacks.forgeries.count && stored.isEmpty,
                  detail: "\(names[attacks.forgedTo]) refused \(attacks.refused) of \(attacks.forgeries.count); stored by \(stored.isEmpty ? "nobody" : stored.map { names[$0] }.joined(separator: ", "))"),
        ]
        return (checks, (unaware.isEmpty ? 1 : 0) + attacks.refused)
    }

    /// The chain settles: sweeps both ways until a sweep moves nothing.
    mutating func settle(_ chain: [Int]) async throws {
        for _ in 0..<(4 * chain.count) {
            let before = try logSizes()
            for link in 0..<(chain.count - 1) { try await pass(chain[link], chain[link + 1]) }
            for link in (0..<(chain.count - 1)).reversed() { try await pass(chain[link], chain[link + 1]) }
            if try logSizes() == before { break }
        }
    }

    func logSizes() throws -> [Int] {
        guard let group else { return [] }
        return try network.logSizes(group)
    }

    // MARK: Checks

    func check(removed: Int) throws -> [SwitchingSimulation.Check] {
        guard let group else { return [] }
        var checks: [SwitchingSimulation.Check] = []
        // Identical views: every device that counts itself a member sees the same members.
        let views = try network.devices.indices.compactMap { index in try view(index).map { (index, $0) } }
        let distinct = Set(views.map(\.1))
        // The equivocation rule removes the adversary (PROTOCOL-NOTES.md, "Equivocation").
        let expected = Set(online.filter { $0 != removed && $0 != attacks?.adversary }.map { ids[$0] } + offline.map { ids[$0] })
        let identical = distinct.count == 1 && distinct.first == expected && views.count == expected.count
        checks.append(.init(
            name: "identical views", ok: identical,
            detail: identical
                ? "\(views.count) devices count themselves members; \(distinct.count) distinct view(s) of \(distinct.first?.count ?? 0) members"
                : views.map { "\(names[$0.0]) sees \($0.1.compactMap { ids.firstIndex(of: $0).map { names[$0] } }.sorted().joined())" }.joined(separator: ", ")
                    + "; expected \(expected.compactMap { ids.firstIndex(of: $0).map { names[$0] } }.sorted().joined())"))
        // Nothing lost: every device, the removed one and the offline ones included, holds every
        // envelope any online device holds; the offline devices' only extras are the offline
        // people's own (their acknowledgments after the import, which travel on with the file to
        // the next offline person and wait in outboxes for a link they never get).
        let adversaryID = attacks.map { ids[$0.adversary] }
        // With an adversary, its own chain is left out: past the fork it is broken where the
        // other side was shown (that is the adversary's loss, not the network's).
        let holdings = try network.devices.map { try $0.holdings(of: group).chains.filter { $0.key != adversaryID } }
        let logs = holdings.map { Set($0.flatMap { $0.value.values }) }
        let union = online.reduce(into: Set<Bytes32>()) { $0.formUnion(logs[$1]) }
        var positions: [Bytes32: String] = [:]
        for chains in holdings {
            for (sender, chain) in chains {
                for (seq, hash) in chain { positions[hash] = "\(ids.firstIndex(of: sender).map { names[$0] } ?? "?")#\(seq)" }
            }
        }
        var short = logs.enumerated().filter { !$0.element.isSuperset(of: union) }.map { entry in
            let missing = union.subtracting(entry.element)
            return "\(names[entry.offset]) lacks \(missing.count) (\(missing.compactMap { positions[$0] }.sorted().prefix(3).joined(separator: ", ")))"
        }
        var offlineOwn = Set<Bytes32>()
        for person in offline {
            for other in offline { offlineOwn.formUnion(holdings[person][ids[other]]?.values.map { $0 } ?? []) }
        }
        var newOnes = 0
        for person in offline {
            let extras = logs[person].subtracting(union).subtracting(offlineOwn)
            if !extras.isEmpty { short.append("\(names[person]) holds \(extras.count) envelopes of others that no online device has") }
            newOnes = max(newOnes, logs[person].subtracting(union).count)
        }
        checks.append(.init(
            name: "nothing lost", ok: short.isEmpty,
            detail: short.isEmpty ? "every device holds all \(union.count) envelopes (the offline also up to \(newOnes) new ones of their own)" : short.joined(separator: ", ")))
        // Exactly the intended readers: a message is read by its sender and the members of
        // its sender's view when it was sent, and by nobody else.
        var wrong: [String] = []
        for (index, device) in network.devices.enumerated() {
            let read = try device.history(of: group).filter { $0.kind == .message }
            let counts = Dictionary(read.map { ($0.text, 1) }, uniquingKeysWith: +)
            for message in sent where message.sender != attacks?.adversary {
                let should = message.sender == index || message.readers.contains(ids[index])
                let copies = counts[message.text] ?? 0
                if copies != (should ? 1 : 0) { wrong.append("\(names[index]) read \"\(message.text)\" \(copies) times") }
            }
        }
        checks.append(.init(
            name: "exactly the intended readers", ok: wrong.isEmpty,
            detail: wrong.isEmpty ? "\(sent.count) messages, each read by exactly its sender's view" : wrong.prefix(5).joined(separator: "; ")))
        // Secrets agree: every closing word was read by every member of its sender's view.
        let closing = sent.filter(\.closing)
        let unread = try closing.flatMap { message in
            try network.devices.indices.filter { message.readers.contains(ids[$0]) }.filter { reader in
                try !network[reader].history(of: group).contains { $0.kind == .message && $0.text == message.text }
            }.map { "\(names[$0]) cannot read \(names[message.sender])'s current epoch" }
        }
        checks.append(.init(
            name: "secrets agree", ok: unread.isEmpty && !closing.isEmpty,
            detail: unread.isEmpty ? "\(closing.count) closing messages, each read by its sender's whole view" : unread.prefix(5).joined(separator: "; ")))
        // Post-compromise security: the seized copy, given every envelope of the group, reads
        // nothing sent by a member who had processed the victim's healing update.
        if var compromise {
            let reference = try network.devices.indices.max { try network[$0].holdings(of: group).vector().heads.count < network[$1].holdings(of: group).vector().heads.count } ?? 0
            let wires = try network[reference].log(of: group, after: 0, limit: 1_000_000).wires
            _ = try compromise.snapshot.receive(wires.map { ReceivedEnvelope(group: group, wire: $0) })
            let read = Set(try compromise.snapshot.history(of: group).filter { $0.kind == .message }.map(\.text))
            let healed = sent.filter(\.afterHeal)
            let leaked = healed.filter { read.contains($0.text) }
            // Those sent after the seizure by members who had not processed the update yet: the
            // copy reads them (it is a working device; healing takes effect per sender).
            let before = sent.dropFirst(compromise.sentBefore).filter { !$0.afterHeal && read.contains($0.text) }.count
            checks.append(.init(
                name: "post-compromise security", ok: leaked.isEmpty && !healed.isEmpty,
                detail: "a copy of \(names[compromise.victim])'s device seized before its update read \(leaked.count) of the \(healed.count) messages sent after their senders processed the update (and \(before) sent after the seizure, before)"))
        }
        // The removed member reads nothing sent by senders who knew of its removal.
        let after = sent.filter { !$0.readers.contains(ids[removed]) && $0.sender != removed }
        let leaked = try network[removed].history(of: group).filter { line in line.kind == .message && after.contains { $0.text == line.text } }
        checks.append(.init(
            name: "removed member", ok: leaked.isEmpty,
            detail: "\(names[removed]) read \(leaked.count) of the \(after.count) messages sent without it in the sender's view"))
        return checks
    }
}
