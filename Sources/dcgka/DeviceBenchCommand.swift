import ArgumentParser
import Benchmarking
import Device
import Foundation

/// `dcgka bench device`: issue 9's device benchmarks (BENCHMARKS.md).
struct DeviceBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "Import throughput of a 64-member group's history into a fresh device against the in-memory core; database sizes; opening a home with 100 groups.",
        discussion: "Build in release mode (swift build -c release -Xcc -O2). Uses a temporary folder, deleted at the end.")

    @Option(help: "Members of the group.") var members = 64
    @Option(help: "Envelopes in its history.") var envelopes = 10_000
    @Option(help: "Updates in the history (each acknowledged by every member).") var updates = 20
    @Option(help: "Groups in the home that is opened.") var groups = 100
    @Option(help: "Envelopes per import transaction.") var batch = DeviceConfiguration().importBatch
    @Option(help: "Seed.") var seed: UInt64 = 1
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-bench-device-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let report = try DeviceBench.run(
            members: members, envelopes: envelopes, updates: updates, groupsInHome: groups, importBatch: batch, seed: seed,
            folder: folder, progress: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
        if json {
            try Output.encodable(report)
        } else {
            print("history: \(report.envelopes) envelopes (\(report.controlEnvelopes) control), \(report.members) members")
            print(String(format: "in-memory core: %.2f s, %.0f envelopes/s", report.coreSeconds, report.coreEnvelopesPerSecond))
            print(String(format: "device (SQLite, batches of %d): %.2f s, %.0f envelopes/s; storage overhead %.2fx",
                         report.importBatch, report.deviceSeconds, report.deviceEnvelopesPerSecond, report.storageOverhead))
            print(String(format: "database %d bytes (%.0f per envelope; the envelopes' wire bytes: %d); group state %d bytes (%.0f per member)",
                         report.databaseBytes, report.bytesPerEnvelope, report.logBytes, report.groupStateBytes, report.groupStateBytesPerMember))
            print(String(format: "home with %d groups: open %.3f s, open and list (decoding every state) %.3f s",
                         report.groupsInHome, report.openHomeSeconds, report.openHomeListSeconds))
        }
    }
}
