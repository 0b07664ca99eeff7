internal import Foundation
internal import HummingbirdWebSocket
internal import Synchronization

/// The pages connected to this server, told when something they show may have changed.
final class UIHub: Sendable {
    private let pages = Mutex<[Int: AsyncStream<String>.Continuation]>([:])
    private let next = Atomic<Int>(0)

    func join() -> (Int, AsyncStream<String>) {
        let id = next.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(4))
        pages.withLock { $0[id] = continuation }
        return (id, stream)
    }

    func leave(_ id: Int) {
        pages.withLock { $0.removeValue(forKey: id) }?.finish()
    }

    /// `{"event":"changed"}` to every page (a page that is behind gets it once).
    func changed() {
        pages.withLock { pages in for page in pages.values { page.yield(#"{"event":"changed"}"#) } }
    }

    func closeAll() {
        let all = pages.withLock { pages in
            defer { pages.removeAll() }
            return Array(pages.values)
        }
        for page in all { page.finish() }
    }
}

/// One page's WebSocket (docs/UI-API.md): requests answered in order, one at a time; pushes
/// of `changed` in between. One writer task owns the socket's outbound side.
enum UISocket {
    /// A request frame is small (a message's text is the largest part).
    static let maximumFrame = 1 << 20

    static func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, engine: UIEngine, hub: UIHub) async {
        let (id, pushes) = hub.join()
        defer { hub.leave(id) }
        let (replies, replyContinuation) = AsyncStream.makeStream(of: String.self)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // The only writer: replies and pushes, merged.
                await withTaskGroup(of: Void.self) { writers in
                    let (merged, mergedContinuation) = AsyncStream.makeStream(of: String.self)
                    writers.addTask {
                        for await reply in replies { mergedContinuation.yield(reply) }
                        mergedContinuation.finish()
                    }
                    writers.addTask {
                        for await push in pushes { mergedContinuation.yield(push) }
                    }
                    for await frame in merged {
                        do { try await outbound.write(.text(frame)) } catch { break }
                    }
                    writers.cancelAll()
                }
            }
            do {
                for try await message in inbound.messages(maxSize: maximumFrame) {
                    guard case .text(let text) = message else { continue }
                    replyContinuation.yield(await engine.reply(to: text))
                }
            } catch {
                // The page went away, or sent a frame past the limit: the socket ends.
            }
            replyContinuation.finish()
            hub.leave(id)
            group.cancelAll()
        }
    }
}
