#if DEBUG
/// Defects that tests plant, one at a time, to prove that a check can fail (issue 13, item 6).
///
/// Debug builds only: release builds compile every switch out, so production code never pays for
/// it and can never be switched into a defect. A task-local value, so tests that run side by side
/// each see only their own switch.
@_spi(PlantedDefects) public enum PlantedDefect: String, Sendable, Hashable, CaseIterable {
    /// 2SM keeps the secret keys a received message should have deleted: the one it was decrypted
    /// with and the older ones (§3.3).
    case keepUsedTwoPartyKey
    /// The message ratchet keeps a message key after using it, or a skipped key after its message arrived (§7).
    case keepUsedMessageKey
    /// update-ratchet returns the two halves of its output the wrong way round (§5.2).
    case swapRatchetHalves
    /// The incremental membership structure ignores step 3 of the strong-remove rule (§4.2).
    case ignoreStrongRemoveStep3
    /// Broadcast does not check `prev` against the held envelope when receiving (§6.2).
    case skipPrevCheckAtReceive
    /// Broadcast does not check `prev` against the sender's head when delivering (§6.2).
    case skipPrevCheckAtDelivery
    /// DCGKA keeps a seed after deriving from it (§5.2).
    case keepSeed
    /// DCGKA keeps a member secret after consuming it (§5.2).
    case keepConsumedMemberSecret
    /// Envelope signatures are not checked (§6.2).
    case acceptBadSignature
    /// Channels opened on my prekey are never moved off it (PROTOCOL-NOTES.md, "Leaving the prekey").
    case stayOnPrekey
}

@_spi(PlantedDefects) public enum PlantedDefects {
    /// The defects planted for the current task.
    @TaskLocal public static var active: Set<PlantedDefect> = []

    /// Whether `defect` is planted for the current task.
    @inline(__always) public static func isActive(_ defect: PlantedDefect) -> Bool {
        !active.isEmpty && active.contains(defect)
    }
}
#endif
