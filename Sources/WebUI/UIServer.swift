public import Device
public import Logging
internal import DCGKAEncoding
internal import Foundation
internal import Hummingbird
internal import HummingbirdWebSocket
internal import NIOCore
internal import ServiceLifecycle
internal import Synchronization

/// `dcgka ui`: the local web client (issue 12). Hummingbird serves the page and its API on
/// loopback only; every request passes ``LocalGuard``; the API drives the same device engine
/// as the CLI (``UIEngine``), and the device keeps its links up meanwhile.
public struct UIServer: Sendable {
    public struct Configuration: Sendable {
        /// Loopback only: `127.0.0.1`, `::1` or `localhost`.
        public var host = "127.0.0.1"
        /// 0 picks a free port.
        public var port = 7450
        /// Accept direct links from contacts here (NETWORK.md §14.2), if anywhere.
        public var peerListen: (host: String, port: Int)?
        /// Devices to keep direct links to, `HOST:PORT` each.
        public var peers: [String] = []
        /// Announce on the LAN and link to contacts found there (needs `peerListen`).
        public var lan = false
        /// The page's files; nil: the ones shipped with the package.
        public var siteDirectory: String?

        public init() {}
    }

    public enum StartError: Error, CustomStringConvertible {
        case notLoopback(String)
        case noSite([String])

        public var description: String {
            switch self {
            case .notLoopback(let host): "dcgka ui listens on loopback only (127.0.0.1, ::1 or localhost), not \(host)"
            case .noSite(let searched): "the web client's files are missing; looked in \(searched.joined(separator: ", ")) (set DCGKA_UI_SITE)"
            }
        }
    }

    let device: Device<SystemRandomNumberGenerator>
    let configuration: Configuration
    let logger: Logger

    public init(device: Device<SystemRandomNumberGenerator>, configuration: Configuration, logger: Logger) {
        self.device = device
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until SIGINT or SIGTERM. `onListening` gets the URL to open (with the token in its
    /// fragment) once the socket listens.
    public func run(onListening: @escaping @Sendable (String) -> Void) async throws {
        guard ["127.0.0.1", "::1", "localhost"].contains(configuration.host) else { throw StartError.notLoopback(configuration.host) }
        let site = try SiteFiles(directory: configuration.siteDirectory)
        var random = SystemRandomNumberGenerator()
        let token = LocalGuard.makeToken(using: &random)
        let guardBox = GuardBox()
        let engine = UIEngine(device: device, logger: logger)
        let hub = UIHub()

        let router = Router(context: UIRequestContext.self)
        router.add(middleware: GuardMiddleware(box: guardBox))
        router.get("/") { _, _ in try site.response(for: "index.html") }
        router.get("/:file") { _, context in try site.response(for: context.parameters.get("file") ?? "") }
        // Files (NETWORK.md §14.4): GET for the common cases; POST with a JSON body for a
        // passphrase, which must not travel in a URL.
        router.get("/api/export") { request, _ in
            try guardBox.apiCheck(request)
            let plain = request.uri.queryParameters.get("protection") == "plain"
            return try await Self.export(engine, group: request.uri.queryParameters.get("group"), protection: plain ? .plain : .participants)
        }
        router.post("/api/export") { request, _ in
            try guardBox.apiCheck(request)
            let body = try await request.body.collect(upTo: 64 << 10)
            let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
            let protection: UIEngine.FileProtection
            switch object["protection"] as? String {
            case "passphrase":
                guard let passphrase = object["passphrase"] as? String, !passphrase.isEmpty else {
                    throw HTTPError(.badRequest, message: "a passphrase is needed")
                }
                protection = .passphrase(passphrase)
            case "plain": protection = .plain
            default: protection = .participants
            }
            return try await Self.export(engine, group: object["group"] as? String, protection: protection)
        }
        router.post("/api/import") { request, _ in
            try guardBox.apiCheck(request)
            // Percent-encoded UTF-8 (header values are ASCII), as the page sends it.
            let passphrase = request.headers[Self.passphraseHeader].flatMap { $0.removingPercentEncoding }.flatMap { $0.isEmpty ? nil : $0 }
            let body = try await request.body.collect(upTo: 256 << 20)
            do {
                let report = try await engine.importFile(Array(buffer: body), passphrase: passphrase)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: report)))
            } catch {
                throw HTTPError(.badRequest, message: "\(error)")
            }
        }
        router.ws("/api/socket") { request, _ in
            guard let localGuard = guardBox.value else { throw HTTPError(.serviceUnavailable) }
            try localGuard.check(origin: request.headers[.origin])
            try localGuard.check(subprotocols: request.headers[values: .secWebSocketProtocol].joined(separator: ","))
            return .upgrade([.secWebSocketProtocol: LocalGuard.subprotocol])
        } onUpgrade: { inbound, outbound, _ in
            await UISocket.run(inbound: inbound, outbound: outbound, engine: engine, hub: hub)
        }

        let host = configuration.host
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(maxFrameSize: UISocket.maximumFrame, autoPing: .enabled(timePeriod: .seconds(30)))),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "dcgka-ui"),
            onServerRunning: { channel in
                let localGuard = LocalGuard(port: channel.localAddress?.port ?? 0, token: token)
                guardBox.set(localGuard)
                onListening(localGuard.url)
            },
            logger: logger)
        let watcher = ChangeWatcher(engine: engine, hub: hub)
        let serviceGroup = ServiceGroup(configuration: .init(services: [app, watcher], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        await engine.configureLinks(listen: configuration.peerListen, peers: configuration.peers, lan: configuration.lan)
        do {
            try await serviceGroup.run()
        } catch is CancellationError {
            // A graceful shutdown may end the server's tasks by cancellation.
        }
        hub.closeAll()
        await engine.stop()
    }
}

extension UIServer {
    /// `X-DCGKA-File-Passphrase`: an imported file's passphrase, percent-encoded.
    static let passphraseHeader = HTTPFields.Element.Name("X-DCGKA-File-Passphrase")!

    static func export(_ engine: UIEngine, group: String?, protection: UIEngine.FileProtection) async throws -> Response {
        do {
            let (bytes, name) = try await engine.export(group: group, protection: protection)
            return Response(
                status: .ok,
                headers: [.contentType: "application/octet-stream", .contentDisposition: "attachment; filename=\"\(name)\""],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch {
            throw HTTPError(.badRequest, message: "\(error)")
        }
    }
}

/// The guard, known once the port is (a port of 0 is chosen at bind).
final class GuardBox: Sendable {
    private let state = Mutex<LocalGuard?>(nil)
    var value: LocalGuard? { state.withLock { $0 } }
    func set(_ value: LocalGuard) { state.withLock { $0 = value } }

    /// An HTTP API request: our page's origin when one is named, and the token.
    func apiCheck(_ request: Request) throws {
        guard let localGuard = value else { throw HTTPError(.serviceUnavailable) }
        if let origin = request.headers[.origin] { try localGuard.check(origin: origin) }
        try localGuard.check(authorization: request.headers[.authorization])
    }
}

/// Host and Origin on every request, the security headers on every response (errors included).
struct GuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let box: GuardBox

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let localGuard = box.value else { return Response(status: .serviceUnavailable) }
        var response: Response
        do {
            try localGuard.check(host: request.head.authority, origin: request.headers[.origin])
            response = try await next(request, context)
        } catch let refusal as LocalGuard.Refusal {
            response = Self.error(HTTPResponse.Status(code: refusal.status), refusal.description)
        } catch let error as HTTPError {
            response = Self.error(error.status, error.body ?? error.status.reasonPhrase)
        } catch {
            response = Self.error(.internalServerError, "\(error)")
        }
        for (name, value) in localGuard.securityHeaders {
            if let field = HTTPFields.Element.Name(name) { response.headers[field] = value }
        }
        return response
    }

    static func error(_ status: HTTPResponse.Status, _ text: String) -> Response {
        let body = UIEngine.encode(["error": text])
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Hummingbird's request context with the WebSocket upgrade's.
struct UIRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
}

/// Tells the pages when what they show may have changed: the device's logs, read marks,
/// links, or another process on the home (a `dcgka import` in a terminal), checked a few
/// times a second.
struct ChangeWatcher: Service {
    let engine: UIEngine
    let hub: UIHub

    func run() async throws {
        var last = await engine.fingerprint()
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(300))
            if Task.isCancelled || Task.isShuttingDownGracefully { break }
            let now = await engine.fingerprint()
            if now != last {
                last = now
                hub.changed()
            }
        }
    }
}

/// The page's files: from a folder, served by name (no paths), with their content types.
struct SiteFiles: Sendable {
    let directory: String

    init(directory: String?) throws {
        var candidates: [String] = []
        if let directory { candidates.append(directory) }
        if let env = ProcessInfo.processInfo.environment["DCGKA_UI_SITE"], !env.isEmpty { candidates.append(env) }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(executable.appendingPathComponent("swift-dcgka_WebUI.resources/site").path)
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/site").path)
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent("index.html")) }) else {
            throw UIServer.StartError.noSite(candidates)
        }
        self.directory = found
    }

    static let types = ["html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
                        "svg": "image/svg+xml", "png": "image/png"]

    func response(for name: String) throws -> Response {
        let parts = name.split(separator: ".")
        guard parts.count == 2, parts[0].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }),
              let type = Self.types[String(parts[1])],
              let data = FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent(name))
        else { throw HTTPError(.notFound, message: "no such file") }
        return Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
