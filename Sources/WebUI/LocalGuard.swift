internal import Foundation

/// The rules that keep a local web client local (issue 12): only this server's own names in
/// `Host` (no DNS rebinding), only its own page as `Origin` (no other site can drive it), and the
/// secret token made at start on every API request. Pure values, so each rule is tested alone.
public struct LocalGuard: Sendable {
    /// Why a request was refused; `status` is the HTTP status it gets.
    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        /// `Host` names another server: a DNS-rebinding attempt or a misdirected request.
        case foreignHost(String?)
        /// `Origin` is another site's (or missing where a browser always sends one).
        case foreignOrigin(String?)
        /// The API's token is missing or wrong.
        case badToken

        public var status: Int {
            switch self {
            case .foreignHost: 421
            case .foreignOrigin: 403
            case .badToken: 401
            }
        }

        public var description: String {
            switch self {
            case .foreignHost(let host): "this server answers only to its loopback address, not to \(host.map { "\"\($0)\"" } ?? "a request without Host")"
            case .foreignOrigin(let origin): "requests from \(origin.map { "\"\($0)\"" } ?? "an unknown origin") are not accepted"
            case .badToken: "the token is missing or wrong; open the address dcgka ui printed"
            }
        }
    }

    /// The WebSocket subprotocol the page asks for and the server answers with.
    public static let subprotocol = "dcgka-ui.v1"
    /// The prefix of the subprotocol that carries the token (browsers cannot set headers on a
    /// WebSocket, and a URL's query would put the token into logs and history).
    public static let tokenPrefix = "token."

    public let port: Int
    /// The secret, 32 random bytes in lowercase hex.
    public let token: String
    /// `Host` values this server answers to.
    public let hosts: Set<String>

    public init(port: Int, token: String) {
        self.port = port
        self.token = token
        hosts = ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)"]
    }

    /// A fresh token from `random`.
    public static func makeToken<R: RandomNumberGenerator>(using random: inout R) -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &random)) }.joined()
    }

    /// The address to open: the token is in the fragment, which a browser never sends.
    public var url: String { "http://127.0.0.1:\(port)/#token=\(token)" }

    /// Every request: `Host` must be one of ours; `Origin`, when present, our page's.
    public func check(host: String?, origin: String?) throws(Refusal) {
        guard let host, hosts.contains(host.lowercased()) else { throw .foreignHost(host) }
        if let origin { try check(origin: origin) }
    }

    /// API requests: an `Origin` is required where a browser always sends one (WebSocket).
    public func check(origin: String?) throws(Refusal) {
        guard let origin, origin.lowercased().hasPrefix("http://"), hosts.contains(String(origin.lowercased().dropFirst(7))) else {
            throw .foreignOrigin(origin)
        }
    }

    /// The token from a WebSocket's `Sec-WebSocket-Protocol` (comma-separated offers).
    public func check(subprotocols: String?) throws(Refusal) {
        let offers = (subprotocols ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard offers.contains(Self.subprotocol),
              let offered = offers.first(where: { $0.hasPrefix(Self.tokenPrefix) }),
              Self.equal(String(offered.dropFirst(Self.tokenPrefix.count)), token)
        else { throw .badToken }
    }

    /// The token from `Authorization: Bearer HEX` (HTTP API requests).
    public func check(authorization: String?) throws(Refusal) {
        guard let authorization, authorization.hasPrefix("Bearer "),
              Self.equal(String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces), token)
        else { throw .badToken }
    }

    /// Compares in time that depends only on the lengths, not on where the first difference is.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }

    /// The Content-Security-Policy on every response: scripts and styles from this server only,
    /// no inline script or style, no other resource, the WebSocket to this server only, no
    /// framing, no forms posting anywhere. (An IPv6 literal is not a valid CSP host source; a
    /// page opened at `[::1]` reaches its WebSocket through `'self'`, which CSP 3 extends to
    /// `ws:` on the same host and port.)
    public var contentSecurityPolicy: String {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            + "connect-src 'self' ws://127.0.0.1:\(port) ws://localhost:\(port); "
            + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }

    /// The headers every response carries.
    public var securityHeaders: [(String, String)] {
        [
            ("Content-Security-Policy", contentSecurityPolicy),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-store"),
            ("X-Frame-Options", "DENY"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Cross-Origin-Resource-Policy", "same-origin"),
        ]
    }
}
