import Foundation
import Testing
import DCGKATestSupport
import DCGKACrypto

// Helpers of the messenger's end-to-end tests. They drive the built `dcgka` binary as a
// subprocess, each test in its own temporary folders, and read what it prints (mostly `--json`);
// the process helpers (CLI, Spawned, Scratch, Home, LogLine, ImportReport) live in
// DCGKATestSupport (Processes.swift), shared with the relay's end-to-end tests.

extension SeededRandom {
    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }
}

/// The seed of a scenario: `MESSENGER_SEED` when set (to replay a failure), else `fallback`.
func scenarioSeed(_ fallback: UInt64) -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["MESSENGER_SEED"], let seed = UInt64(text) { return seed }
    return fallback
}
