public import DCGKAEncoding
internal import CLibFuzzer
#if canImport(Glibc)
import Glibc
#endif

// Pieces every fuzz target shares: the input cursor, the checks that turn a broken property into a
// crash libFuzzer records, and the seed writer behind `scripts/make_fuzz_corpus.sh`.

/// Reads the fuzzer's bytes front to back; running out yields nil (or zero), never a trap.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        bytes = size > 0 ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remaining: Int { max(0, bytes.count - offset) }

    public mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func byteOrZero() -> UInt8 { byte() ?? 0 }

    /// A big-endian 16-bit value (missing bytes are zero).
    public mutating func uint16() -> Int { Int(byteOrZero()) << 8 | Int(byteOrZero()) }

    /// Up to `count` bytes.
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = min(count, remaining)
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { take(remaining) }
}

/// Writes to standard error, unbuffered.
public func printError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// A property the code under test must keep was broken: a real finding. Traps with a message that
/// libFuzzer's crash report shows.
public func finding(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "FUZZ FINDING: \(message())"
    printError(text + "\n")
    fatalError(text, file: file, line: line)
}

public func require(
    _ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line
) {
    if !condition { finding(message(), file: file, line: line) }
}

public func hexString<C: Collection>(_ bytes: C, limit: Int = 96) -> String where C.Element == UInt8 {
    let shown = bytes.prefix(limit).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    return bytes.count > limit ? shown + "…(\(bytes.count) bytes)" : shown
}

/// Decodes `bytes` as a `T`; when that succeeds, its encoding must be exactly `bytes` (§8: one
/// encoding per value) and decoding that encoding again must give an equal value.
@discardableResult
public func decodeCanonical<T: WireCodable & Equatable>(
    _ type: T.Type, _ bytes: [UInt8], file: StaticString = #fileID, line: UInt = #line
) -> T? {
    guard let value = try? T(wireBytes: bytes) else { return nil }
    checkReencodes(value, bytes, file: file, line: line)
    return value
}

/// `value` was decoded from `bytes`: its encoding must be `bytes`, and it must decode to itself.
public func checkReencodes<T: WireCodable & Equatable>(
    _ value: T, _ bytes: [UInt8], file: StaticString = #fileID, line: UInt = #line
) {
    let again = value.wireBytes
    require(again == bytes, "\(T.self) decoded from \(hexString(bytes)) re-encodes to different bytes \(hexString(again))",
            file: file, line: line)
    checkRoundTrip(value, file: file, line: line)
}

/// A value the code produced (not decoded): its encoding must decode, to an equal value that encodes
/// to the same bytes.
public func checkRoundTrip<T: WireCodable & Equatable>(_ value: T, file: StaticString = #fileID, line: UInt = #line) {
    let bytes = value.wireBytes
    let decoded: T
    do { decoded = try T(wireBytes: bytes) } catch {
        finding("the encoding of a \(T.self) does not decode: \(error); bytes \(hexString(bytes))", file: file, line: line)
    }
    require(decoded.wireBytes == bytes, "a decoded \(T.self) re-encodes to different bytes", file: file, line: line)
    require(decoded == value, "a \(T.self) decodes to a different value than was encoded", file: file, line: line)
}

/// The selector-byte convention of the multi-decoder targets: the first byte picks the decoder
/// (modulo the number of decoders), the rest is its input.
public func selectorSeed(_ selector: Int, _ bytes: [UInt8]) -> [UInt8] { [UInt8(selector)] + bytes }

/// The `main` of every target (`fuzz_<name>_main`): the seed writer when asked for it, otherwise the
/// fixtures, then libFuzzer's driver with the target's `LLVMFuzzerTestOneInput`.
public func fuzzMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
    seeds: () -> [[UInt8]], testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt {
    // Dictionary and Set order (and so the paths the code takes) must not change between runs, or
    // a saved input might not reproduce: run with Swift's deterministic hashing, which is fixed at
    // process start, so set it and start again.
    // Swift's own crash backtracer is switched off too: under ASan it trips a false report of its
    // own, and libFuzzer prints the stack of a trap anyway.
    if getenv("SWIFT_DETERMINISTIC_HASHING") == nil || getenv("SWIFT_BACKTRACE") == nil {
        setenv("SWIFT_DETERMINISTIC_HASHING", "1", 1)
        setenv("SWIFT_BACKTRACE", "enable=no", 0)
        execv("/proc/self/exe", argv)
        printError("cannot re-execute with SWIFT_DETERMINISTIC_HASHING=1; going on without it\n")
    }
    fuzzInitialize(seeds: seeds)
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
}

/// Called by ``fuzzMain``: with `DCGKA_FUZZ_WRITE_CORPUS=DIR` in the environment it
/// writes the target's seeds into DIR (`seed-NNN`, replacing what is there) and exits; otherwise it
/// builds the fixtures up front, so the first input is not charged for them.
public func fuzzInitialize(seeds: () -> [[UInt8]]) {
    if let dir = getenv("DCGKA_FUZZ_WRITE_CORPUS").map({ String(cString: $0) }), !dir.isEmpty {
        let list = seeds()
        mkdir(dir, 0o755)  // the parent must exist
        for (i, seed) in list.enumerated() {
            let index = String(i)
            let path = dir + "/seed-" + String(repeating: "0", count: max(0, 3 - index.count)) + index
            guard let file = fopen(path, "wb") else { fatalError("cannot write \(path)") }
            _ = seed.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
        printError("wrote \(list.count) seeds (\(list.reduce(0) { $0 + $1.count }) bytes) to \(dir)\n")
        for problem in Fixtures.shared.problems { printError("fixture problem: \(problem)\n") }
        _exit(0)  // not exit: the seeds are still referenced, and LeakSanitizer would report them
    }
    _ = Fixtures.shared
}

/// What a target is handed for an empty input when libFuzzer passes no pointer.
nonisolated(unsafe) public let emptyInput: UnsafePointer<UInt8> = UnsafePointer(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))
