import Testing
@testable import WebUI

@Suite("The web client's guard (issue 12)")
struct LocalGuardTests {
    let guardValue = LocalGuard(port: 7450, token: String(repeating: "ab", count: 32))

    @Test("Host must name this server (no DNS rebinding)")
    func host() throws {
        try guardValue.check(host: "127.0.0.1:7450", origin: nil)
        try guardValue.check(host: "localhost:7450", origin: nil)
        try guardValue.check(host: "[::1]:7450", origin: nil)
        #expect(throws: LocalGuard.Refusal.foreignHost("evil.example:7450")) { try guardValue.check(host: "evil.example:7450", origin: nil) }
        #expect(throws: LocalGuard.Refusal.foreignHost("127.0.0.1:7451")) { try guardValue.check(host: "127.0.0.1:7451", origin: nil) }
        #expect(throws: LocalGuard.Refusal.foreignHost("127.0.0.1")) { try guardValue.check(host: "127.0.0.1", origin: nil) }
        #expect(throws: LocalGuard.Refusal.foreignHost(nil)) { try guardValue.check(host: nil, origin: nil) }
    }

    @Test("Origin, when given, must be this server's page")
    func origin() throws {
        try guardValue.check(host: "127.0.0.1:7450", origin: "http://127.0.0.1:7450")
        #expect(throws: LocalGuard.Refusal.self) { try guardValue.check(host: "127.0.0.1:7450", origin: "http://evil.example") }
        #expect(throws: LocalGuard.Refusal.self) { try guardValue.check(host: "127.0.0.1:7450", origin: "https://127.0.0.1:7450") }
        #expect(throws: LocalGuard.Refusal.self) { try guardValue.check(host: "127.0.0.1:7450", origin: "null") }
        #expect(throws: LocalGuard.Refusal.foreignOrigin(nil)) { try guardValue.check(origin: nil) }
    }

    @Test("The token: in the WebSocket subprotocol or as a bearer, compared whole")
    func token() throws {
        let token = guardValue.token
        try guardValue.check(subprotocols: "dcgka-ui.v1, token.\(token)")
        try guardValue.check(authorization: "Bearer \(token)")
        #expect(throws: LocalGuard.Refusal.badToken) { try guardValue.check(subprotocols: "token.\(token)") }
        #expect(throws: LocalGuard.Refusal.badToken) { try guardValue.check(subprotocols: "dcgka-ui.v1") }
        #expect(throws: LocalGuard.Refusal.badToken) { try guardValue.check(subprotocols: "dcgka-ui.v1, token.\(token.dropLast())") }
        #expect(throws: LocalGuard.Refusal.badToken) { try guardValue.check(subprotocols: "dcgka-ui.v1, token.\(token)00") }
        #expect(throws: LocalGuard.Refusal.badToken) { try guardValue.check(subprotocols: nil) }
        #expect(throws: LocalGuard.Refusal.badToken) { try guardValue.check(authorization: "Bearer " + String(repeating: "ab", count: 31) + "ac") }
        #expect(throws: LocalGuard.Refusal.badToken) { try guardValue.check(authorization: token) }
        #expect(throws: LocalGuard.Refusal.badToken) { try guardValue.check(authorization: nil) }
    }

    @Test("A fresh token per start, 32 bytes in hex; the URL carries it in the fragment only")
    func fresh() {
        var random = SystemRandomNumberGenerator()
        let a = LocalGuard.makeToken(using: &random), b = LocalGuard.makeToken(using: &random)
        #expect(a.count == 64 && b.count == 64 && a != b)
        #expect(a.allSatisfy { "0123456789abcdef".contains($0) })
        let url = LocalGuard(port: 9, token: a).url
        #expect(url == "http://127.0.0.1:9/#token=\(a)")
    }

    @Test("The CSP forbids inline script and every other source")
    func csp() {
        let csp = guardValue.contentSecurityPolicy
        #expect(csp.contains("default-src 'none'"))
        #expect(csp.contains("script-src 'self';"))
        #expect(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"))
        #expect(csp.contains("frame-ancestors 'none'"))
    }
}
