import ArgumentParser
import DCGKAEncoding
import DCGKACrypto
import Device
import DeviceStorage
import Sync
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `--home DIR`: where a device keeps its database (default `$DCGKA_HOME`, else `~/.dcgka`).
struct HomeOptions: ParsableArguments {
    @Option(name: .long, help: "The device's home folder (default: $DCGKA_HOME, else ~/.dcgka).")
    var home: String?

    var path: String {
        if let home { return home }
        if let env = ProcessInfo.processInfo.environment["DCGKA_HOME"], !env.isEmpty { return env }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".dcgka").path
    }

    var databasePath: String { (path as NSString).appendingPathComponent("dcgka.sqlite") }

    /// Opens the home's device; `create` makes the folder (mode 0700) when it is missing. A locked
    /// home asks for its passphrase (`DCGKA_PASSPHRASE`, else the terminal); `lockWith` locks a
    /// new one.
    func open(create: Bool = false, lockWith: String? = nil) throws -> Device<SystemRandomNumberGenerator> {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            guard create else { throw CLIError("no dcgka home at \(path); run `dcgka init --name NAME` first (or give --home)") }
            try manager.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } else if !create, !manager.fileExists(atPath: databasePath) {
            throw CLIError("no dcgka home at \(path); run `dcgka init --name NAME` first (or give --home)")
        }
        let store: SQLiteDeviceStore
        do {
            store = try SQLiteDeviceStore(path: databasePath, lockWith: lockWith)
        } catch DeviceStoreError.passphraseRequired {
            store = try SQLiteDeviceStore(path: databasePath, passphrase: try readPassphrase("Passphrase of \(path): "))
        }
        return Device(store: store, clock: { Clock.now() }, random: SystemRandomNumberGenerator())
    }
}

/// `--json`: one JSON value on standard output.
struct JSONOption: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON value on standard output.")
    var json = false
}

enum Clock {
    /// Seconds since 1970. `DCGKA_CLOCK_OFFSET` (seconds, may be negative) moves it, so tests and
    /// rehearsals can pass bundle expiries without waiting.
    static func now() -> UInt64 {
        let offset = Int64(ProcessInfo.processInfo.environment["DCGKA_CLOCK_OFFSET"] ?? "") ?? 0
        return UInt64(max(0, Int64(Date().timeIntervalSince1970) + offset))
    }
}

/// A one-line error in words.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command body; any failure is one line on standard error and exit status 1, never a
/// stack trace.
func runReporting(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        let text: String
        switch error {
        case let error as any CustomStringConvertible: text = error.description
        default: text = "\(error)"
        }
        FileHandle.standardError.write(Data("dcgka: \(text)\n".utf8))
        throw ExitCode(1)
    }
}

/// Printing helpers shared by the messenger's commands.
enum Output {
    static func json(_ value: Any) throws {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    /// One `Encodable` value as one line of JSON: snake_case keys, sorted.
    static func encodable<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
    }

    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func hex(_ id: MemberID) -> String { id.raw.hex }
    static func hex(_ id: GroupID) -> String { id.raw.hex }
    static func time(_ seconds: UInt64) -> String { Timestamp.iso8601(seconds) }

    static var isTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    /// A progress bar on standard error, for long files on a terminal only.
    static func progress(_ label: String, _ done: Int, _ total: Int) {
        guard isTerminal, total >= 1000 else { return }
        let width = 30
        let filled = min(width, done * width / max(1, total))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total)".utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// A passphrase from the environment (`DCGKA_PASSPHRASE` for the home; for files
/// `DCGKA_FILE_PASSPHRASE`, else `DCGKA_PASSPHRASE`), else asked on the terminal without echo.
func readPassphrase(_ prompt: String, forFile: Bool = false) throws -> String {
    let environment = ProcessInfo.processInfo.environment
    let names = forFile ? ["DCGKA_FILE_PASSPHRASE", "DCGKA_PASSPHRASE"] : ["DCGKA_PASSPHRASE"]
    for name in names { if let env = environment[name], !env.isEmpty { return env } }
    guard isatty(STDIN_FILENO) != 0, let raw = getpass(prompt) else {
        throw CLIError("a passphrase is needed: set DCGKA_PASSPHRASE or run on a terminal")
    }
    let passphrase = String(cString: raw)
    guard !passphrase.isEmpty else { throw CLIError("the passphrase is empty") }
    return passphrase
}
