import DCGKAEncoding
import DCGKATestSupport
import Device
import DeviceStorage
import Foundation
import Logging
import RelayClient
import Sync
import Testing

/// Links that stay up (`dcgka chat`, `log --follow`, `dcgka ui`) carry groups that appear while
/// they are up: a group created after the link started is subscribed once the relay holds it, and
/// an invitation stored at the relay reaches the invitee's live link at once (NETWORK.md §11.1).
@Suite("Live links and new groups")
struct LiveLinkTests {
    typealias LiveDevice = Device<SystemRandomNumberGenerator>

    static func device(_ name: String) throws -> LiveDevice {
        var device = Device(store: try SQLiteDeviceStore(path: nil), clock: { UInt64(Date().timeIntervalSince1970) }, random: SystemRandomNumberGenerator())
        _ = try device.initialize(name: name)
        return device
    }

    /// Follows the relay until cancelled; `up` is signalled once the link is live.
    static func follow(_ device: LiveDevice, _ relay: RelayAddress, up: AsyncStream<Void>.Continuation) throws -> Task<Void, Never> {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let client = RelayClient(device: device, identity: try device.identityKey(), logger: logger)
        return Task.detached {
            while !Task.isCancelled {
                try? await client.follow(relay) { _ in up.yield() }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Polls `condition` until true or `seconds` pass (``poll(timeout:every:_:)``).
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) async -> Bool {
        await poll(timeout: .seconds(seconds), every: .milliseconds(100)) { (try? condition()) == true ? true : nil } ?? false
    }

    @Test("an invitation and a group created after the links came up travel live, with no new pass", .timeLimit(.minutes(3)))
    func newGroupsWhileLinked() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-live-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let relayProcess = try RelayProcess.start(data: (folder as NSString).appendingPathComponent("relay"), options: RelayProcess.loopbackOptions)
        defer { relayProcess.cleanUp() }
        let relay = try RelayAddress(parsing: relayProcess.address)

        var alice = try Self.device("alice")
        var bob = try Self.device("bob")
        // Bob does not know Alice: her group reaches him as an invitation to accept.
        let bobID = try bob.me().id
        _ = try alice.addContact(code: try bob.profile().contactCode, name: "bob")
        try alice.addRelay(relay)
        try bob.addRelay(relay)

        let (aliceUp, aliceSignal) = AsyncStream.makeStream(of: Void.self)
        let (bobUp, bobSignal) = AsyncStream.makeStream(of: Void.self)
        let aliceLink = try Self.follow(alice, relay, up: aliceSignal)
        let bobLink = try Self.follow(bob, relay, up: bobSignal)
        defer { aliceLink.cancel(); bobLink.cancel() }
        var aliceIterator = aliceUp.makeAsyncIterator()
        var bobIterator = bobUp.makeAsyncIterator()
        _ = await aliceIterator.next()
        _ = await bobIterator.next()

        // Both links are live; only now does the group exist.
        let group = try alice.createGroup(title: "Late", with: [bobID])
        LogActivity.shared.changed()
        #expect(await Self.eventually(60) { try bob.groups().contains { $0.id == group && $0.pendingInvitation } },
                "Bob's live link never heard of the invitation:\n\(relayProcess.logs)")
        try bob.acceptInvitation(group)
        try bob.send(text: "hello from a live link", to: group)
        LogActivity.shared.changed()
        // Alice's link predates the group: it subscribed once the relay held it.
        #expect(await Self.eventually(60) { try alice.history(of: group).contains { $0.text == "hello from a live link" } },
                "Alice's live link never got Bob's message:\n\(relayProcess.logs)")
        try alice.send(text: "and back", to: group)
        LogActivity.shared.changed()
        #expect(await Self.eventually(60) { try bob.history(of: group).contains { $0.text == "and back" } })
    }
}
