import ArgumentParser
import Foundation
import NetworkSimulation
import Simulator
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the deterministic network simulator and check convergence, FS and PCS.")

    @Option(help: "Members at creation (default 8; 5 for --topology switching).") var members: Int?
    @Option(help: "Scheduled operations (messages, updates, adds, removes; default 200, 60 for --topology switching).") var operations: Int?
    @Option(help: "Seed of the whole run.") var seed: UInt64 = 1
    @Option(help: "Share of operations that are application messages (0...1).") var messageShare = 0.7
    @Option(help: "Member states to snapshot for forward-secrecy and PCS checks.") var compromises = 3
    @Option(help: "Threads on which devices receive side by side (default: one per processor); the outcome is the same for any number.")
    var threads: Int?
    @Option(help: "One delivery in this many also brings a forged or tampered envelope (0: none).") var forgeryRate = 400
    @Option(help: "Times the newest member loses its prekeys (past §2.3's hard limit) and must recover by §5.7's resync.")
    var prekeyLosses = 0
    @Flag(help: "Deliver in order with no delay, loss, partitions or forgeries.") var benign = false
    @Flag(help: "One malicious member: in the protocol topology it adds with a low-order prekey, removes after its own removal, sends malformed, oversized and invented welcomes, splits an update's seeds and equivocates (an add to half the members, an update to the others), and the clock passes every expiry; with --topology switching a chain member equivocates to one neighbour and pushes forgeries to the other. Every attack must be detected and the checks hold over the honest members.")
    var adversary = false
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "protocol (default): the core simulator; switching: the transport scenario of NETWORK.md §14 over the real device, sync and relay engines (--members ≥ 5, default 5; --operations default 60).")
    var topology = "protocol"

    func run() async throws {
        if topology == "switching" {
            try await runSwitching()
            return
        }
        guard topology == "protocol" else {
            FileHandle.standardError.write(Data("dcgka: unknown topology \"\(topology)\": use protocol or switching\n".utf8))
            throw ExitCode(1)
        }
        if adversary, (members ?? 8) < 4 {
            FileHandle.standardError.write(Data("dcgka: --adversary needs --members 4 or more (the fork goes to two sides)\n".utf8))
            throw ExitCode(1)
        }
        let start = monotonicSeconds()
        var configuration = SimulationConfiguration(
            members: members ?? 8, operations: operations ?? 200, seed: seed, adversarial: !benign,
            messageShare: messageShare, compromises: compromises, threads: threads ?? processorCount(),
            forgeryRate: forgeryRate, prekeyLosses: prekeyLosses)
        configuration.adversary = adversary
        let report = Simulation.run(configuration)
        let wall = monotonicSeconds() - start
        let peak = peakResidentMegabytes()
        if json {
            print(report.json(wallSeconds: wall, peakMemoryMB: peak))
        } else {
            print(report.summary(wallSeconds: wall, peakMemoryMB: peak))
        }
        if !report.ok { throw ExitCode(1) }
    }
}

extension SimulateCommand {
    /// `--topology switching`: five or more people over a company relay, a home relay, a chain
    /// of direct links and a file (issue 11), seeded; every check at the end.
    func runSwitching() async throws {
        let people = members ?? 5
        let steps = operations ?? 60
        guard people >= 5 else {
            FileHandle.standardError.write(Data("dcgka: the switching scenario needs at least 5 members\n".utf8))
            throw ExitCode(1)
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-switching-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let start = monotonicSeconds()
        var configuration = SwitchingSimulation.Configuration(members: people, operations: steps, seed: seed)
        configuration.adversary = adversary
        let report = try await SwitchingSimulation(configuration).run(in: folder)
        let wall = monotonicSeconds() - start
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var object = try JSONSerialization.jsonObject(with: encoder.encode(report)) as? [String: Any] ?? [:]
            object["topology"] = "switching"
            object["wall_seconds"] = (wall * 100).rounded() / 100
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(report.summary)
            print("  \((wall * 100).rounded() / 100) s")
        }
        if !report.ok { throw ExitCode(1) }
    }
}

/// Processors this process may run on.
func processorCount() -> Int {
    #if canImport(Glibc)
    return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
    return max(1, Int(sysconf(_SC_NPROCESSORS_ONLN)))
    #endif
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

#if canImport(Glibc)
let RUSAGE_SELF_VALUE = __rusage_who_t(RUSAGE_SELF.rawValue)
#else
let RUSAGE_SELF_VALUE = RUSAGE_SELF
#endif

/// User and system CPU time of the whole process so far.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF_VALUE, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF_VALUE, &usage)
    #if canImport(Darwin)
    return Double(usage.ru_maxrss) / 1_048_576
    #else
    return Double(usage.ru_maxrss) / 1024
    #endif
}

extension SimulationReport {
    func json(wallSeconds: Double, peakMemoryMB: Double) -> String {
        func str(_ s: String) -> String {
            var out = "\""
            for character in s {
                switch character {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                case "\n": out += "\\n"
                default: out.append(character)
                }
            }
            return out + "\""
        }
        let fields: [(String, String)] = [
            ("seed", "\(seed)"), ("members_initial", "\(membersInitial)"), ("members_final", "\(membersFinal)"),
            ("views_agree", "\(viewsAgree)"), ("secrets_agree", "\(secretsAgree)"), ("secrets_compared", "\(secretsCompared)"),
            ("messages_sent", "\(messagesSent)"), ("expected_decryptions", "\(expectedDecryptions)"),
            ("decryptions", "\(decryptions)"), ("unexpected_decryptions", "\(unexpectedDecryptions)"),
            ("missed_decryptions", "\(missedDecryptions)"), ("fs_checks", "\(fsChecks)"), ("fs_violations", "\(fsViolations)"),
            ("pcs_checks", "\(pcsChecks)"), ("pcs_violations", "\(pcsViolations)"),
            ("fs_key_recovery_checks", "\(fsKeyRecoveryChecks)"), ("fs_key_recovery_violations", "\(fsKeyRecoveryViolations)"),
            ("fs_key_recovery_prekey_exposed", "\(fsKeyRecoveryPrekeyExposed)"),
            ("fs_inventory_checks", "\(fsInventoryChecks)"), ("fs_inventory_violations", "\(fsInventoryViolations)"),
            ("oracle_checks", "\(oracleChecks)"), ("oracle_violations", "\(oracleViolations)"),
            ("forgeries_injected", "\(forgeriesInjected)"), ("forgeries_accepted", "\(forgeriesAccepted)"),
            ("updates", "\(updates)"), ("adds", "\(adds)"), ("readds", "\(readds)"), ("removes", "\(removes)"),
            ("envelopes_delivered", "\(envelopesDelivered)"), ("duplicates_injected", "\(duplicatesInjected)"),
            ("partitions", "\(partitions)"), ("threads", "\(threads)"),
            ("prekey_losses", "\(prekeyLosses)"), ("ratchets_lost", "\(ratchetsLost)"), ("resync_requests", "\(resyncRequests)"),
            ("lost_to_recovery", "\(lostToRecovery)"),
        ]
        let adversaryFields: [(String, String)] = adversary ? [
            ("adversary_attacks", "\(adversaryAttacks)"), ("adversary_detected", "\(adversaryDetected)"),
            ("lost_to_adversary", "\(lostToAdversary)"),
        ] : []
        let closing: [(String, String)] = [
            ("processing_failures", "[" + processingFailures.prefix(20).map(str).joined(separator: ",") + "]"),
            ("problems", "[" + problems.prefix(20).map(str).joined(separator: ",") + "]"),
            ("wall_seconds", String(format3(wallSeconds))), ("cpu_seconds", String(format3(cpuSeconds()))), ("peak_memory_mb", String(format3(peakMemoryMB))),
            ("ok", "\(ok)"),
        ]
        return "{" + (fields + adversaryFields + closing).map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }

    func summary(wallSeconds: Double, peakMemoryMB: Double) -> String {
        var lines = [
            "seed \(seed): \(membersInitial) members at creation, \(membersFinal) at the end",
            "operations: \(messagesSent) messages, \(updates) updates, \(adds) adds, \(readds) re-adds, \(removes) removes",
            "network: \(envelopesDelivered) deliveries, \(duplicatesInjected) duplicates injected, \(partitions) partitions",
            "losses: \(prekeyLosses) prekey stores wiped, \(ratchetsLost) ratchets lost, \(resyncRequests) resync requests, \(lostToRecovery) decryptions missed while a ratchet was lost",
            "views agree: \(viewsAgree); update secrets agree: \(secretsAgree) (\(secretsCompared) compared)",
            "decryptions: \(decryptions) of \(expectedDecryptions) expected; unexpected \(unexpectedDecryptions), missed \(missedDecryptions)",
            "forward secrecy: \(fsViolations) violations in \(fsChecks) checks; PCS: \(pcsViolations) violations in \(pcsChecks) checks",
            "key recovery from snapshots: \(fsKeyRecoveryViolations) violations in \(fsKeyRecoveryChecks) checks (\(fsKeyRecoveryPrekeyExposed) readable through a still-held prekey, by design)",
            "secret inventory: \(fsInventoryViolations) used-up secrets found in snapshots, of \(fsInventoryChecks) checked",
            "oracle: \(oracleViolations) views differ from §4.2 in \(oracleChecks) checks; forgeries: \(forgeriesAccepted) accepted of \(forgeriesInjected) injected",
            "wall time \(format3(wallSeconds)) s (CPU \(format3(cpuSeconds())) s on \(threads) thread\(threads == 1 ? "" : "s")), peak memory \(format3(peakMemoryMB)) MB",
        ]
        if adversary {
            lines.append("adversary: \(adversaryAttacks) attacks, \(adversaryDetected) detections by honest members; \(lostToAdversary) honest decryptions lost in the disrupted window (checks over the honest members)")
        }
        for failure in processingFailures.prefix(10) { lines.append("processing failure: \(failure)") }
        for problem in problems.prefix(200) { lines.append("problem: \(problem)") }
        lines.append(ok ? "OK: every check held" : "FAILED")
        return lines.joined(separator: "\n")
    }
}

func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}
