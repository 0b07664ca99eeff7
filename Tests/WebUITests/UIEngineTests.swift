import DCGKAEncoding
import Device
import DeviceStorage
import Foundation
import Logging
import Testing
@testable import WebUI

/// The page's API on the device engine, without a browser: every operation answers once, in
/// words when it fails, and what the page shows comes from the device (docs/UI-API.md).
@Suite("The web client's API")
struct UIEngineTests {
    final class Page {
        let engine: UIEngine
        var next = 0
        init(_ engine: UIEngine) { self.engine = engine }

        func call(_ op: String, _ arguments: [String: Any] = [:]) async throws -> [String: Any] {
            next += 1
            var request = arguments
            request["op"] = op
            request["id"] = next
            let frame = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
            let reply = try #require(try JSONSerialization.jsonObject(with: Data(await engine.reply(to: frame).utf8)) as? [String: Any])
            #expect(reply["id"] as? Int == next)
            return reply
        }

        func ok(_ op: String, _ arguments: [String: Any] = [:]) async throws -> [String: Any] {
            let reply = try await call(op, arguments)
            #expect(reply["ok"] as? Bool == true, "\(op): \(reply)")
            return reply["result"] as? [String: Any] ?? [:]
        }

        func error(_ op: String, _ arguments: [String: Any] = [:]) async throws -> String {
            let reply = try await call(op, arguments)
            #expect(reply["ok"] as? Bool == false, "\(op) should fail: \(reply)")
            return reply["error"] as? String ?? ""
        }
    }

    static func page() throws -> Page {
        let device = Device(store: try SQLiteDeviceStore(path: nil), clock: { UInt64(Date().timeIntervalSince1970) }, random: SystemRandomNumberGenerator())
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return Page(UIEngine(device: device, logger: logger))
    }

    @Test("first start: no identity until a name is chosen; then a contact code")
    func firstStart() async throws {
        let page = try Self.page()
        let before = try await page.ok("overview")
        #expect(before["me"] is NSNull)
        #expect(before["online"] as? Bool == false)
        #expect(try await page.error("init", ["name": "  "]).contains("name"))
        _ = try await page.ok("init", ["name": "Alice"])
        let after = try await page.ok("overview")
        let me = try #require(after["me"] as? [String: Any])
        #expect(me["name"] as? String == "Alice")
        #expect((me["contact_code"] as? String)?.hasPrefix("dcgka1") == true)
        #expect(try await page.error("init", ["name": "Again"]).isEmpty == false)
    }

    @Test("contacts, a group, messages and events, unread counts, and errors in words")
    func conversation() async throws {
        let alice = try Self.page(), bob = try Self.page()
        _ = try await alice.ok("init", ["name": "Alice"])
        _ = try await bob.ok("init", ["name": "Bob"])
        let bobCode = try #require((try await bob.ok("overview"))["me"] as? [String: Any])["contact_code"] as! String
        // One character changed: the checksum's sentence.
        var broken = Array(bobCode)
        broken[20] = broken[20] == "a" ? "b" : "a"
        let refusal = try await alice.error("add_contact", ["code": String(broken), "name": "Bob"])
        #expect(refusal.contains("checksum") || refusal.contains("damaged") || refusal.contains("signature"), "\(refusal)")
        let contact = try await alice.ok("add_contact", ["code": bobCode, "name": "Bob"])
        let bobID = try #require(contact["id"] as? String)
        let created = try await alice.ok("create_group", ["title": "Newsroom", "members": [bobID]])
        let group = try #require(created["group"] as? String)
        _ = try await alice.ok("send", ["group": group, "text": "<img src=x onerror=alert(1)>"])
        #expect(try await alice.error("send", ["group": group, "text": "   "]).contains("empty"))
        let history = try await alice.ok("history", ["group": group, "after": 0])
        let entries = try #require(history["entries"] as? [[String: Any]])
        #expect(entries.first?["kind"] as? String == "event")
        #expect((entries.first?["text"] as? String)?.contains("created the group") == true)
        let message = try #require(entries.last)
        #expect(message["kind"] as? String == "message")
        #expect(message["text"] as? String == "<img src=x onerror=alert(1)>")
        #expect(message["mine"] as? Bool == true && message["from"] as? String == "Alice")
        // After the last entry: nothing new.
        let later = try await alice.ok("history", ["group": group, "after": message["id"] as! Int])
        #expect((later["entries"] as? [Any])?.isEmpty == true)
        // The members panel.
        let panel = try await alice.ok("group", ["group": group])
        let members = try #require(panel["members"] as? [[String: Any]])
        #expect(Set(members.compactMap { $0["name"] as? String }) == ["Alice", "Bob"])
        #expect(panel["member"] as? Bool == true)
        // My own messages are never unread.
        let overview = try await alice.ok("overview")
        let listed = try #require((overview["groups"] as? [[String: Any]])?.first)
        #expect(listed["unread"] as? Int == 0 && listed["title"] as? String == "Newsroom")
    }

    @Test("malformed requests get a typed answer, never a crash")
    func malformed() async throws {
        let page = try Self.page()
        for frame in ["", "[]", "not json", "{\"id\": 1}", "{\"id\": 1, \"op\": 5}", String(repeating: "[", count: 100_000)] {
            let reply = try #require(try JSONSerialization.jsonObject(with: Data(await page.engine.reply(to: frame).utf8)) as? [String: Any])
            #expect(reply["ok"] as? Bool == false)
        }
        #expect(try await page.error("no_such_op").contains("unknown operation"))
        _ = try await page.ok("init", ["name": "Carol"])
        #expect(try await page.error("send", ["group": "zz", "text": "x"]).contains("group"))
        #expect(try await page.error("history", ["group": String(repeating: "ab", count: 32), "after": "x"]).contains("whole number"))
        #expect(try await page.error("add_relay", ["address": "https://example.com"]).contains("relay address"))
        #expect(try await page.error("set_relay_policy", ["policy": "never"]).contains("ask"))
    }
}

@Suite("dcgka ui listens on loopback only")
struct LoopbackOnlyTests {
    @Test("any other address is refused before anything listens", arguments: ["0.0.0.0", "192.168.1.10", "::", "example.com"])
    func refused(host: String) async throws {
        let device = Device(store: try SQLiteDeviceStore(path: nil), clock: { 1_800_000_000 }, random: SystemRandomNumberGenerator())
        var configuration = UIServer.Configuration()
        configuration.host = host
        configuration.port = 0
        let server = UIServer(device: device, configuration: configuration, logger: Logger(label: "test"))
        await #expect(throws: UIServer.StartError.self) { try await server.run { _ in Issue.record("it listened on \(host)") } }
    }
}
