// swift-tools-version:6.1
import PackageDescription

/// libFuzzer targets for swift-dcgka (issue 8, "Fuzzing"). A package of its own, so that `swift build`
/// and `swift test` of the main package never build these executables. Build and run them with
/// `scripts/fuzz.sh` (see FUZZING.md): release, `-sanitize=fuzzer,address`, scratch path
/// `Fuzz/.build-fuzz`, one `--product` at a time.
///
/// Each target is one executable whose only source file defines `LLVMFuzzerTestOneInput` with
/// `@_cdecl`, compiled with `-parse-as-library` (no top-level code). SwiftPM links every Swift
/// executable with `main` renamed to `<module>_main` (`--defsym main=fuzz_<name>_main`, for testable
/// executables), so libFuzzer's own `main` never gets linked; each target therefore defines
/// `fuzz_<name>_main` with `@_cdecl` and hands its `LLVMFuzzerTestOneInput` to libFuzzer's
/// `LLVMFuzzerRunDriver` (declared by the `CLibFuzzer` header module).
let fuzzTargets = ["envelope", "control", "welcome", "twoparty", "application", "groupstate", "bundle", "group", "sync", "link"]

let library: [Target.Dependency] = [
    .product(name: "DCGKAGroup", package: "swift-dcgka"),
]

/// What each target needs beyond `library`.
func extra(_ name: String) -> [Target.Dependency] {
    switch name {
    case "sync": [.product(name: "Device", package: "swift-dcgka"), .product(name: "Sync", package: "swift-dcgka")]
    case "link": [.product(name: "Link", package: "swift-dcgka"), .product(name: "Relay", package: "swift-dcgka"),
                  .product(name: "Sync", package: "swift-dcgka")]
    default: []
    }
}

let package = Package(
    name: "swift-dcgka-fuzz",
    platforms: [.macOS(.v14)],
    products: fuzzTargets.map { .executable(name: "fuzz-\($0)", targets: ["fuzz-\($0)"]) },
    dependencies: [
        // The main package, by path; identity pinned by name so the clone's folder name does not matter.
        .package(name: "swift-dcgka", path: ".."),
    ],
    targets: [
        // Fixtures (a deterministic group run), the input cursor, canonical round-trip checks and
        // the seed writer shared by every target.
        .target(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"] + library),
    ] + fuzzTargets.map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: ["FuzzSupport"] + library + extra(name),
            path: "Sources/fuzz-\(name)",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    },
    swiftLanguageModes: [.v6]
)
