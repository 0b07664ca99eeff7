import Foundation
import Testing
import DCGKATestSupport

/// Runs the built `dcgka` executable as a subprocess.
@Suite struct CLITests {
    static func binary() throws -> URL { try TestExecutables.dcgka() }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting so a full pipe cannot block the child.
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    static let requiredKeys = [
        "seed", "members_final", "views_agree", "secrets_agree", "messages_sent", "expected_decryptions", "decryptions",
        "unexpected_decryptions", "missed_decryptions", "fs_checks", "fs_violations", "pcs_checks", "pcs_violations", "ok",
    ]

    @Test("dcgka simulate --json prints one JSON object with the report's keys")
    func simulateJSON() throws {
        let result = try Self.run(["simulate", "--members", "4", "--operations", "30", "--seed", "3", "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)\nstdout: \(result.stdout)")
        let data = Data(result.stdout.utf8)
        let object = try JSONSerialization.jsonObject(with: data)
        let json = try #require(object as? [String: Any], "not a JSON object: \(result.stdout)")
        for key in Self.requiredKeys { #expect(json[key] != nil, "missing key \(key)") }
        #expect((json["seed"] as? NSNumber)?.intValue == 3)
        #expect(json["ok"] as? Bool == true, "\(result.stdout)")
        #expect(json["views_agree"] as? Bool == true)
        #expect(json["secrets_agree"] as? Bool == true)
        for key in ["unexpected_decryptions", "missed_decryptions", "fs_violations", "pcs_violations"] {
            #expect((json[key] as? NSNumber)?.intValue == 0, "\(key)")
        }
        let decryptions = (json["decryptions"] as? NSNumber)?.intValue
        let expected = (json["expected_decryptions"] as? NSNumber)?.intValue
        #expect(decryptions != nil && decryptions == expected)
        #expect(((json["members_final"] as? NSNumber)?.intValue ?? 0) >= 2)
        #expect(((json["messages_sent"] as? NSNumber)?.intValue ?? 0) > 0)
    }

    @Test("dcgka simulate is deterministic for a seed (apart from timing), on any number of threads")
    func simulateDeterministic() throws {
        func strip(_ output: String) throws -> NSDictionary {
            let object = try JSONSerialization.jsonObject(with: Data(output.utf8))
            let dictionary = NSMutableDictionary(dictionary: try #require(object as? [String: Any]))
            dictionary.removeObjects(forKeys: ["wall_seconds", "cpu_seconds", "peak_memory_mb", "threads"])
            return dictionary
        }
        let arguments = ["simulate", "--members", "6", "--operations", "40", "--seed", "8", "--json"]
        let first = try Self.run(arguments + ["--threads", "1"])
        let second = try Self.run(arguments + ["--threads", "1"])
        let parallel = try Self.run(arguments + ["--threads", "2"])
        #expect(try strip(first.stdout) == strip(second.stdout))
        #expect(try strip(first.stdout) == strip(parallel.stdout))
        #expect(parallel.stdout.contains("\"threads\": 2"))
    }

    @Test("dcgka demo: four homes talking by files converge, and Bob reads nothing after his removal")
    func demo() throws {
        let result = try Self.run(["demo", "--seed", "7"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        func section(_ name: String) -> String {
            guard let start = result.stdout.range(of: "--- what \(name) sees") else { return "" }
            let rest = result.stdout[start.upperBound...]
            return String(rest[..<(rest.range(of: "---")?.lowerBound ?? rest.endIndex)])
        }
        for name in ["Alice", "Bob", "Carol", "Dave"] { #expect(!section(name).isEmpty, "no section for \(name)") }
        #expect(!section("Bob").contains("Bob is gone"), "Bob read a message sent after his removal")
        #expect(section("Bob").contains("removed you"))
        for name in ["Carol", "Dave"] {
            #expect(section(name).contains("Alice: Bob is gone; he cannot read this."), "\(name) missed a message")
        }
        #expect(section("Alice").contains("Carol: Confirmed, three of us now."))
        #expect(section("Dave").contains("Hello! I read from my add on"))
        #expect(!section("Dave").contains("Hi both"), "Dave read a message from before his add")
        // Every device ends with the same members.
        let members = result.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("  ") && $0.contains(": Alice, Carol, Dave") }
        #expect(members.count == 4, "\(result.stdout)")
    }

    @Test("dcgka wipe refuses without --yes off a terminal, and with it leaves no trace of the home")
    func wipe() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-wipe-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: home) }
        #expect(try Self.run(["init", "--home", home, "--name", "Alice"]).status == 0)
        let refused = try Self.run(["wipe", "--home", home])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("--yes"))
        #expect(FileManager.default.fileExists(atPath: home + "/dcgka.sqlite"))
        let wiped = try Self.run(["wipe", "--home", home, "--yes"])
        #expect(wiped.status == 0, "\(wiped.stderr)")
        #expect(!FileManager.default.fileExists(atPath: home))
        let after = try Self.run(["whoami", "--home", home])
        #expect(after.status == 1)
        #expect(after.stderr.hasPrefix("dcgka: no dcgka home"))
    }

    @Test("dcgka rejects an unknown option")
    func badOption() throws {
        let result = try Self.run(["simulate", "--no-such-option"])
        #expect(result.status != 0)
    }
}
