#if DEBUG
@_spi(PlantedDefects) import DCGKAEncoding
import Testing

/// Issue 13, item 6, for the vectors: swapping the two halves of the update-ratchet output keeps
/// every member in agreement (so the simulator cannot see it), but the known-answer vectors must.
@Suite struct KnownAnswerPlantedDefectTests {
    @Test("swapped update-ratchet halves fail the derivation and scripted-group vectors", .disabled(if: writesVectors))
    func swappedRatchetHalves() {
        let (derivations, scripted) = PlantedDefects.$active.withValue([.swapRatchetHalves]) {
            (derivationVectorMismatches(), scriptedGroupMismatches())
        }
        #expect(!derivations.isEmpty)
        #expect(derivations.contains { $0.contains("updateSecret") } && derivations.contains { $0.contains("nextState") },
                "both halves are checked: \(derivations.prefix(4))")
        #expect(!scripted.isEmpty)
    }
}
#endif
