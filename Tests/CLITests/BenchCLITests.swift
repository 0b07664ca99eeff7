import Foundation
import Testing

/// `dcgka bench` at tiny sizes: it runs and its CSV parses. Never a timed assertion.
@Suite struct BenchCLITests {
    static let referenceColumns = [
        "group_size", "operation", "sender_cpu_ms_mean", "recipient_cpu_ms_mean", "total_bytes_mean", "runs",
    ]

    @Test("dcgka bench --sizes 3,4 --runs 1 --csv prints a CSV with the reference columns first")
    func benchCSV() throws {
        let result = try CLITests.run(["bench", "--sizes", "3,4", "--runs", "1", "--warmup", "0", "--csv", "--quiet"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let header = try #require(lines.first).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(Array(header.prefix(6)) == Self.referenceColumns)
        for column in ["sender_total_cpu_ms_mean", "added_member_cpu_ms_mean", "sender_cpu_ms_sd", "recipient_cpu_ms_sd", "total_bytes_sd"] {
            #expect(header.contains(column), "missing \(column)")
        }
        // Two sizes × five operations.
        #expect(lines.count == 1 + 10, "\(result.stdout)")
        var seen: Set<String> = []
        for line in lines.dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            #expect(fields.count == header.count, "\(line)")
            guard fields.count == header.count else { continue }
            let size = try #require(Int(fields[0]))
            #expect(size == 3 || size == 4)
            seen.insert("\(size) \(fields[1])")
            for index in 2...4 { #expect(Double(fields[index]) != nil, "\(header[index]) in \(line)") }
            #expect((Double(fields[4]) ?? 0) > 0, "bytes in \(line)")
            let runs = try #require(Int(fields[5]))
            // create is the set-up of every run (4 operations × 1 run); the others ran once.
            #expect(runs == (fields[1] == "create" ? 4 : 1), "\(line)")
            let added = fields[header.firstIndex(of: "added_member_cpu_ms_mean")!]
            #expect(added.isEmpty == (fields[1] != "add"), "\(line)")
        }
        for size in [3, 4] {
            for operation in ["create", "update", "add", "remove", "message"] {
                #expect(seen.contains("\(size) \(operation)"), "missing \(size) \(operation)")
            }
        }
    }

    @Test("dcgka bench --output and --floor-output write both tables to files")
    func benchFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("bench.csv").path
        let floor = directory.appendingPathComponent("floor.csv").path
        let result = try CLITests.run([
            "bench", "--sizes", "3", "--operations", "update,message", "--runs", "1", "--warmup", "0", "--csv",
            "--output", output, "--floor-output", floor, "--quiet",
        ])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let csv = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 3)
        #expect(csv.first?.hasPrefix(Self.referenceColumns.joined(separator: ",")) == true)
        let floorLines = try String(contentsOfFile: floor, encoding: .utf8).split(separator: "\n")
        #expect(floorLines.first?.hasPrefix("group_size,operation,role,") == true)
        #expect(floorLines.count > 2)
    }

    @Test("dcgka bench rejects an unknown operation")
    func benchBadOperation() throws {
        let result = try CLITests.run(["bench", "--sizes", "3", "--operations", "dance", "--csv"])
        #expect(result.status != 0)
    }
}
