#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds.
///
/// All members of a benchmark run on one thread, one call at a time, so the CPU time a member
/// spends is the thread CPU time spent inside that member's calls.
@inline(__always)
public func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Runs `body` and adds the thread CPU time it took to `total` (nanoseconds).
@inline(__always)
public func measureCPU<T, E: Error>(into total: inout UInt64, _ body: () throws(E) -> T) throws(E) -> T {
    let start = threadCPUNanoseconds()
    defer { total &+= threadCPUNanoseconds() &- start }
    return try body()
}
