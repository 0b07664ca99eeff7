import ArgumentParser
import Benchmarking
import Foundation

/// `dcgka membership-growth`: the size of the membership state a welcome carries after K
/// membership operations at n members, with and without folding (BENCHMARKS.md).
struct MembershipGrowthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membership-growth",
        abstract: "Measure the welcome's membership state after many membership operations, folded and not.")

    @Option(help: "Members (at least 2).") var members = 64
    @Option(help: "Membership operations after the create.") var operations = 10_000
    @Option(help: "Print a sample every this many operations.") var every = 1_000
    @Option(help: "Seed of the schedule.") var seed: UInt64 = 1
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard members >= 2, members <= 65_536 else { throw ValidationError("--members must be from 2 to 65,536") }
        guard operations >= 0, operations <= 1_000_000 else { throw ValidationError("--operations must be from 0 to 1,000,000") }
        guard every >= 1 else { throw ValidationError("--every must be at least 1") }
    }

    func run() throws {
        let growth = try MembershipGrowth.measure(members: members, operations: operations, seed: seed, every: every)
        if json {
            struct Report: Encodable {
                var members: Int, operations: Int, seed: UInt64
                var maximum_bytes_folded: Int, members_agree: Bool
                var samples: [MembershipGrowth.Sample]
            }
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(Report(
                members: members, operations: operations, seed: seed,
                maximum_bytes_folded: growth.maximumBytesFolded, members_agree: growth.membersAgree, samples: growth.samples))
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("operations  folded bytes  unfolded bytes")
            for s in growth.samples { print("\(s.operations)  \(s.bytesFolded)  \(s.bytesUnfolded)") }
            print("largest folded state: \(growth.maximumBytesFolded) bytes; members agree: \(growth.membersAgree)")
        }
    }
}
