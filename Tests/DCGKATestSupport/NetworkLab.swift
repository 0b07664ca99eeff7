import Foundation
import Synchronization

/// Network namespaces a test creates for itself (`ip netns` + veth): one namespace per node, all
/// joined by a bridge in a switch namespace, addresses 10.77.N.x/24. Links are cut and restored
/// by taking a node's port on the switch down and up. Everything is removed by ``tearDown()``.
/// Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); ``unavailableReason`` says why not, when not.
public final class NetworkLab: @unchecked Sendable {
    public let prefix: String
    public let subnet: Int
    public private(set) var nodes: [String: Int] = [:]
    private var namespaces: [String] = []

    /// Why namespaces cannot be made here, or nil when they can.
    public static let unavailableReason: String? = {
        guard getuid() == 0 else { return "network namespaces need root (this test runs as uid \(getuid()))" }
        guard let ip = ipPath else { return "the `ip` command (iproute2) is not installed" }
        let probe = "dcgka-probe-\(getpid())"
        guard (try? run(ip, ["netns", "add", probe])) != nil else { return "`ip netns add` is not permitted here" }
        _ = try? run(ip, ["netns", "del", probe])
        return nil
    }()

    private static let serial = Mutex(0)

    static let ipPath: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Makes the switch and one namespace per node (named `PREFIX-NODE`).
    public init(nodes names: [String]) throws {
        guard let ip = Self.ipPath else { throw CLI.Failure("no ip command") }
        // Unique per lab: tests in one process run side by side, and namespaces are global.
        let serial = Self.serial.withLock { value -> Int in value += 1; return value }
        subnet = Int((Int(getpid()) &* 7 &+ serial) % 200) + 20
        prefix = "dl\(getpid() % 100_000)n\(serial)"
        let switchName = "\(prefix)-sw"
        try Self.run(ip, ["netns", "add", switchName])
        namespaces.append(switchName)
        try Self.run(ip, ["-n", switchName, "link", "add", "br0", "type", "bridge"])
        try Self.run(ip, ["-n", switchName, "link", "set", "br0", "up"])
        try Self.run(ip, ["-n", switchName, "link", "set", "lo", "up"])
        for (index, name) in names.enumerated() {
            let namespace = "\(prefix)-\(name)"
            try Self.run(ip, ["netns", "add", namespace])
            namespaces.append(namespace)
            let host = index + 1
            let inside = "v\(host)", outside = "s\(host)"
            try Self.run(ip, ["-n", switchName, "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", namespace])
            try Self.run(ip, ["-n", switchName, "link", "set", outside, "master", "br0"])
            try Self.run(ip, ["-n", switchName, "link", "set", outside, "up"])
            try Self.run(ip, ["-n", namespace, "addr", "add", "10.77.\(subnet).\(host)/24", "dev", inside])
            try Self.run(ip, ["-n", namespace, "link", "set", inside, "up"])
            try Self.run(ip, ["-n", namespace, "link", "set", "lo", "up"])
            nodes[name] = host
        }
    }

    public func namespace(_ node: String) -> String { "\(prefix)-\(node)" }

    /// The node's address on the switch.
    public func address(_ node: String) -> String { "10.77.\(subnet).\(nodes[node] ?? 0)" }

    /// Takes the node's port on the switch down (its link is cut) or up again.
    public func setLink(_ node: String, up: Bool) throws {
        guard let ip = Self.ipPath, let host = nodes[node] else { return }
        try Self.run(ip, ["-n", "\(prefix)-sw", "link", "set", "s\(host)", up ? "up" : "down"])
    }

    /// No traffic between two nodes from now on (a blackhole route to each other on both).
    public func block(_ a: String, _ b: String) throws {
        guard let ip = Self.ipPath else { return }
        try Self.run(ip, ["-n", namespace(a), "route", "add", "blackhole", "\(address(b))/32"])
        try Self.run(ip, ["-n", namespace(b), "route", "add", "blackhole", "\(address(a))/32"])
    }

    public func tearDown() {
        guard let ip = Self.ipPath else { return }
        for namespace in namespaces.reversed() { _ = try? Self.run(ip, ["netns", "del", namespace]) }
        namespaces = []
    }

    deinit { tearDown() }

    /// A `dcgka` command line to run in `namespace` (through `ip netns exec`), or as it is.
    public static func command(_ arguments: [String], in namespace: String?) throws -> (URL, [String]) {
        let dcgka = try CLI.binary()
        guard let namespace else { return (dcgka, arguments) }
        guard let ip = ipPath else { throw CLI.Failure("no ip command for namespace \(namespace)") }
        return (URL(fileURLWithPath: ip), ["netns", "exec", namespace, dcgka.path] + arguments)
    }

    @discardableResult
    static func run(_ program: String, _ arguments: [String]) throws -> String {
        let result = try CLI.run(arguments, executable: URL(fileURLWithPath: program), timeout: 30)
        guard result.succeeded else { throw CLI.Failure("\(program) \(arguments.joined(separator: " ")): \(result.stderr)") }
        return result.stdout
    }
}
