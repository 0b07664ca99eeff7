import ArgumentParser
import Benchmarking
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `dcgka bench`: the paper's evaluation (all members in one process, envelopes as wire bytes,
/// thread CPU time per member, bytes handed to the network) and the crypto floor. See BENCHMARKS.md.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure CPU time per member and bytes per operation, as the DCGKA paper's evaluation does.",
        discussion: """
            Build in release mode (swift build -c release -Xcc -O2). Each run makes a fresh group of n \
            (its set-up is the "create" sample), lets the creator perform the operation and delivers \
            everything it causes. Runs are shuffled after a warm-up. The CSV starts with the columns of \
            ../shared/reference/*.csv (the Java prototype's conventions), followed by ours.
            """,
        subcommands: [DeviceBenchCommand.self, RelayBenchCommand.self, MeshBenchCommand.self])

    @Option(help: "Group sizes, comma-separated.")
    var sizes: String = BenchConfiguration.paperSizes.map(String.init).joined(separator: ",")

    @Option(help: "Operations, comma-separated: create, update, add, remove, message.")
    var operations: String = BenchOperation.allCases.map(\.rawValue).joined(separator: ",")

    @Option(help: "Runs per size and operation.") var runs = 25

    @Option(help: "Runs for sizes above 128 (default: min(runs, 3)).") var largeRuns: Int?

    @Option(help: "Warm-up rounds (each operation once at a small size) before measuring.") var warmup = 2

    @Option(help: "Seed for keys, protocol randomness and the run order.") var seed: UInt64 = 1

    @Option(help: "Runs at the same time, each on its own thread (default 1: the other core stays free).") var jobs = 1

    @Flag(help: "Print the results as CSV.") var csv = false

    @Flag(help: "Also print the crypto-floor table (public-key operations per role, floor, our ratio).")
    var floor = false

    @Option(help: "Write the results to this file instead of standard output.") var output: String?

    @Option(help: "Write the crypto-floor table as CSV to this file.") var floorOutput: String?

    @Flag(help: "No progress lines on standard error.") var quiet = false

    func validate() throws {
        _ = try parsedSizes()
        _ = try parsedOperations()
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if let largeRuns, largeRuns < 1 { throw ValidationError("--large-runs must be at least 1") }
        guard jobs >= 1, jobs <= 64 else { throw ValidationError("--jobs must be from 1 to 64") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
    }

    func parsedSizes() throws -> [Int] {
        let values = sizes.split(separator: ",").map { $0.trimmingCharacters() }
        var result: [Int] = []
        for value in values {
            guard let size = Int(value), size >= 3, size <= 4096 else {
                throw ValidationError("--sizes: \"\(value)\" is not a group size from 3 to 4096")
            }
            result.append(size)
        }
        guard !result.isEmpty else { throw ValidationError("--sizes is empty") }
        return result
    }

    func parsedOperations() throws -> [BenchOperation] {
        var result: [BenchOperation] = []
        for value in operations.split(separator: ",").map({ $0.trimmingCharacters() }) {
            guard let operation = BenchOperation(rawValue: value) else {
                throw ValidationError("--operations: unknown operation \"\(value)\" (create, update, add, remove, message)")
            }
            if !result.contains(operation) { result.append(operation) }
        }
        guard !result.isEmpty else { throw ValidationError("--operations is empty") }
        return result
    }

    func run() throws {
        let configuration = BenchConfiguration(
            sizes: try parsedSizes(), operations: try parsedOperations(), runs: runs, largeRuns: largeRuns,
            warmupRuns: warmup, seed: seed, jobs: jobs)
        let quiet = self.quiet
        let results = try BenchRunner.run(configuration) { line in
            if !quiet { writeStandardError(line + "\n") }
        }
        var text = csv ? BenchReport.csv(results) : BenchReport.table(results)
        if floor {
            if csv {
                // Keep standard output (or the file) one CSV; the floor goes to standard error.
                writeStandardError(BenchReport.floorTable(results))
            } else {
                text += "\n" + BenchReport.floorTable(results)
            }
        }
        if let output {
            try writeFile(output, text)
        } else {
            print(text, terminator: "")
        }
        if let floorOutput { try writeFile(floorOutput, BenchReport.floorCSV(results)) }
    }
}

struct FileWriteError: Error, CustomStringConvertible {
    let path: String
    var description: String { "cannot write \(path)" }
}

func writeFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "w") else { throw FileWriteError(path: path) }
    defer { fclose(file) }
    let bytes = Array(text.utf8)
    guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw FileWriteError(path: path) }
}

func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
