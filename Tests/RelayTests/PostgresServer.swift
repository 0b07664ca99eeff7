import Foundation
import DCGKATestSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A private PostgreSQL server for one test: `initdb` into a temporary folder, listening only on
/// 127.0.0.1 at a free port (its socket in the same folder), trust authentication, one database;
/// ``stop()`` (`pg_ctl stop -m fast`) ends it and removes the folder. Run as root, the server runs
/// as the unprivileged `postgres` user (`runuser -u postgres --`), which owns the folder.
///
/// PostgreSQL must be installed (CI installs it): the binaries are found through
/// `DCGKA_POSTGRES_BIN`, else `/usr/lib/postgresql/<newest>/bin` (Debian, Ubuntu), else the
/// folders of `PATH`. When none is found, ``start(database:)`` throws, so the test fails with the
/// reason; it never skips silently.
final class PostgresServer: @unchecked Sendable {
    let folder: URL
    let binaries: URL
    let port: Int
    let database: String
    /// The database superuser (initdb's `-U`): `postgres` when run as root, else the current user.
    let user: String
    /// `runuser -u postgres --` when the tests run as root.
    private let runAs: [String]
    /// Whether `pg_ctl start` was run (then ``stop()`` runs `pg_ctl stop`).
    private var running = false

    var data: String { folder.appendingPathComponent("data").path }
    var logFile: String { folder.appendingPathComponent("server.log").path }

    /// `postgres://USER@127.0.0.1:PORT/DATABASE`, for `dcgka relay serve --store`.
    var url: String { "postgres://\(user)@127.0.0.1:\(port)/\(database)" }

    struct NotInstalled: Error, CustomStringConvertible {
        let searched: [String]
        var description: String {
            "PostgreSQL is not installed (no initdb and pg_ctl in \(searched)); these tests need it: install the postgresql package (CI does) or set DCGKA_POSTGRES_BIN to its bin folder"
        }
    }

    private init(folder: URL, binaries: URL, port: Int, database: String, user: String, runAs: [String]) {
        self.folder = folder
        self.binaries = binaries
        self.port = port
        self.database = database
        self.user = user
        self.runAs = runAs
    }

    /// The folder holding `initdb`, `pg_ctl` and `createdb`.
    static func findBinaries() throws -> URL {
        let manager = FileManager.default
        var candidates: [String] = []
        if let bin = ProcessInfo.processInfo.environment["DCGKA_POSTGRES_BIN"], !bin.isEmpty { candidates.append(bin) }
        let debian = "/usr/lib/postgresql"
        if let versions = try? manager.contentsOfDirectory(atPath: debian) {
            // Newest first: 17 before 16 before 9.6.
            func number(_ version: String) -> [Int] { version.split(separator: ".").compactMap { Int($0) } }
            let sorted = versions.sorted { number($1).lexicographicallyPrecedes(number($0)) }
            candidates += sorted.map { "\(debian)/\($0)/bin" }
        }
        candidates += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        candidates += ["/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/local/bin"]
        for candidate in candidates {
            let url = URL(fileURLWithPath: candidate)
            if ["initdb", "pg_ctl", "createdb"].allSatisfy({ manager.isExecutableFile(atPath: url.appendingPathComponent($0).path) }) {
                return url
            }
        }
        throw NotInstalled(searched: candidates)
    }

    /// A port that was free on 127.0.0.1 a moment ago (the kernel's choice for port 0).
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw CLI.Failure("socket() failed: \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw CLI.Failure("bind() failed: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw CLI.Failure("getsockname() failed: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Starts a server with one empty database (at most a few tries, should the free port be taken
    /// in between). On any failure the server is stopped and the folder removed before the throw.
    static func start(database: String = "relay") throws -> PostgresServer {
        let binaries = try findBinaries()
        let manager = FileManager.default
        let folder = manager.temporaryDirectory.appendingPathComponent("dcgka-pg-\(UUID().uuidString.prefix(8))")
        try manager.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var runAs: [String] = []
        var user = ProcessInfo.processInfo.environment["USER"] ?? "postgres"
        if getuid() == 0 {
            // PostgreSQL refuses to run as root: the server runs as `postgres`, which owns the folder.
            guard let entry = getpwnam("postgres") else {
                try? manager.removeItem(at: folder)
                throw CLI.Failure("running as root, but there is no `postgres` user to run PostgreSQL as")
            }
            guard chown(folder.path, entry.pointee.pw_uid, entry.pointee.pw_gid) == 0 else {
                try? manager.removeItem(at: folder)
                throw CLI.Failure("cannot give \(folder.path) to the postgres user (errno \(errno))")
            }
            runAs = ["/usr/sbin/runuser", "-u", "postgres", "--"]
            if !manager.isExecutableFile(atPath: runAs[0]) { runAs[0] = "/sbin/runuser" }
            user = "postgres"
        } else if let entry = getpwuid(getuid()), let name = entry.pointee.pw_name {
            user = String(cString: name)
        }
        var lastError: (any Error)?
        for _ in 0..<3 {
            let server = PostgresServer(
                folder: folder, binaries: binaries, port: try freePort(), database: database, user: user, runAs: runAs)
            do {
                if !manager.fileExists(atPath: server.data) { try server.initialize() }
                try server.launch()
                try server.createDatabase()
                return server
            } catch {
                lastError = error
                server.halt()
                // A port taken meanwhile: try another; anything else: give up.
                guard "\(error)".contains("in use") || "\(error)".contains("could not bind") || "\(error)".contains("could not start") else { break }
            }
        }
        try? manager.removeItem(at: folder)
        throw lastError ?? CLI.Failure("PostgreSQL did not start")
    }

    /// Closes every descriptor above 2, then runs the arguments. `pg_ctl start` leaves the server
    /// running in the background with the descriptors it inherited, and Foundation's `Process`
    /// learns that a child ended from a socket the child inherits: without this, the test would
    /// wait for `pg_ctl` until the server stops.
    static let closingDescriptors = [
        "-c", #"for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; exec "$@""#, "sh",
    ]

    /// bash (dash cannot close descriptors above 9).
    static var shell: String { FileManager.default.isExecutableFile(atPath: "/bin/bash") ? "/bin/bash" : "/bin/sh" }

    /// Runs one of the PostgreSQL programs (as `postgres` when root) to its end.
    @discardableResult
    private func tool(_ name: String, _ arguments: [String], timeout: Double = 120) throws -> CLI.Result {
        let program = binaries.appendingPathComponent(name)
        let result = try CLI.run(
            Self.closingDescriptors + runAs + [program.path] + arguments, executable: URL(fileURLWithPath: Self.shell), timeout: timeout)
        guard result.succeeded else { throw CLI.Failure("\(name) failed: \(result)\nserver log: \(serverLog)") }
        return result
    }

    private var serverLog: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "(none)" }

    private func initialize() throws {
        try tool("initdb", ["-D", data, "-U", user, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"])
    }

    private func launch() throws {
        let options = "-c listen_addresses=127.0.0.1 -p \(port) -k \(folder.path) -c max_connections=200"
        running = true
        try tool("pg_ctl", ["-D", data, "-l", logFile, "-o", options, "-w", "-t", "60", "start"])
    }

    private func createDatabase() throws {
        try tool("createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", user, database])
    }

    /// `pg_ctl stop -m fast` (immediate if that does not end it), without removing the folder.
    private func halt() {
        guard running else { return }
        running = false
        if (try? tool("pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"])) == nil {
            _ = try? tool("pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "30", "stop"])
        }
    }

    /// Stops the server and removes its folder. Safe to call more than once.
    func stop() {
        halt()
        try? FileManager.default.removeItem(at: folder)
    }

    /// Runs SQL with `psql` (for checks), returning its unaligned output.
    func query(_ sql: String) throws -> String {
        let psql = binaries.appendingPathComponent("psql")
        let result = try CLI.run(
            ["-h", "127.0.0.1", "-p", "\(port)", "-U", user, "-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
            executable: psql, timeout: 60)
        guard result.succeeded else { throw CLI.Failure("psql failed: \(result)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
