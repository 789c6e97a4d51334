import ArgumentParser
import Foundation
import Hummingbird
import HummingbirdCore
import JSON
import NIOCore
import Pipeline
import Stages

/// `haps-pipe ui`: the store in a browser, read-only and live (docs/ui.md). The page and its
/// script are embedded (`BrowserAssets`); the pages' data are JSON endpoints under /api
/// (`StoreBrowser`), read from the store at each request.
struct UICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "haps-pipe ui",
        abstract: "Look at a store's experiments, runs, results, evaluations and sweeps in a browser (read-only).",
        discussion: """
            Pages: Experiments (every pipeline's experiments, sortable and filterable; tick two to \
            compare them as `exp diff` does), a run's graph (each stage's outcome and time, linking \
            to its result), a result (parameters with defaults marked, inputs, figures, files, \
            provenance, log), an evaluation (rows with intervals, the cost–quality plane, each \
            question's answers and the dialogue each row chose) and sweeps (tables and curves). \
            The store is read at each request: a run in progress shows up on reload.

            Binds to loopback unless --host says otherwise. With --api-key-env, a request needs \
            'Authorization: Bearer <key>' or the cookie that opening /?key=<key> once sets.

            JSON endpoints (what the pages show): /api/overview, /api/run?pipeline=&experiment=[&run=], \
            /api/diff?pipeline=&a=&b=, /api/result?target=, /api/file?digest=&name=[&download=1], \
            /api/evaluation?digest=, /api/question?digest=&index=, /api/dialogue?digest=&index=&row=, \
            /api/sweep?name=, /api/sweep/plot?name=&x=&figures=a,b (SVG).

            Examples:
              haps-pipe ui                       # the store ./artifacts on http://127.0.0.1:8300
              haps-pipe ui --store /data/haps/artifacts --port 9000
              HAPS_UI_KEY=secret haps-pipe ui --host 0.0.0.0 --api-key-env HAPS_UI_KEY
            """)

    @Option(help: ArgumentHelp("The artifact store to show.", valueName: "dir")) var store: String = "artifacts"
    @Option(help: "Address to bind (loopback by default; 0.0.0.0 for every interface).") var host: String = "127.0.0.1"
    @Option(help: "Port (0: any free port, printed at start).") var port: Int = 8300
    @Option(help: ArgumentHelp("Require a key, read from this environment variable: 'Authorization: Bearer <key>', or the cookie /?key=<key> sets.",
                               valueName: "var")) var apiKeyEnv: String?

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be between 0 and 65535") }
    }

    func run() async throws {
        guard FileIO.isDirectory(store) else {
            throw ValidationError("no store at \(store): run a pipeline first (`haps-pipe run SPEC`), or give --store DIR")
        }
        let browser = StoreBrowser(store: try Store(root: store))
        var key: String?
        if let env = apiKeyEnv {
            guard let v = ProcessInfo.processInfo.environment[env], !v.isEmpty else { throw ValidationError("--api-key-env names \(env), which is not set or empty") }
            key = v
        }
        if key == nil && !["127.0.0.1", "localhost", "::1"].contains(host) {
            FileHandle.standardError.write(Data("haps-pipe ui: warning: listening on \(host) without --api-key-env: anyone who can reach this address can read the store\n".utf8))
        }
        let router = Router()
        router.add(middleware: RequestLog(metrics: ServeMetrics()))
        if let key { router.add(middleware: UIKey(key: key)) }
        UIRoutes(browser: browser).register(on: router)
        let host = self.host
        let root = browser.store.root
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "haps-pipe"),
                              onServerRunning: { channel in
                                  let line = "haps-pipe ui: listening on http://\(host):\(channel.localAddress?.port ?? 0) (store \(root))\n"
                                  FileHandle.standardOutput.write(Data(line.utf8))
                              })
        try await app.runService()
        FileHandle.standardError.write(Data("haps-pipe ui: stopped\n".utf8))
    }
}

/// The interface's routes: the page at `/`, its data under `/api`.
struct UIRoutes: Sendable {
    let browser: StoreBrowser

    func register(on router: Router<BasicRequestContext>) {
        let page = BrowserAssets.page()
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: page)))
        }
        router.get("/api/overview") { _, _ in await self.json { b, _ in b.overview() } }
        router.get("/api/run") { r, _ in await self.json(r) { b, q in try b.run(pipeline: q.required("pipeline"), experiment: q.required("experiment"), runID: q["run"]) } }
        router.get("/api/diff") { r, _ in await self.json(r) { b, q in try b.diff(pipeline: q.required("pipeline"), q.required("a"), q.required("b")) } }
        router.get("/api/result") { r, _ in await self.json(r) { b, q in try b.result(q.required("target")) } }
        router.get("/api/evaluation") { r, _ in await self.json(r) { b, q in try b.evaluation(q.required("digest")) } }
        router.get("/api/question") { r, _ in await self.json(r) { b, q in try b.question(q.required("digest"), index: q.integer("index")) } }
        router.get("/api/dialogue") { r, _ in await self.json(r) { b, q in try b.dialogue(q.required("digest"), index: q.integer("index"), row: q.required("row")) } }
        router.get("/api/sweep") { r, _ in await self.json(r) { b, q in try b.sweep(q.required("name")) } }
        router.get("/api/sweep/plot") { r, _ in
            await self.respond(r) { b, q in
                let figures = try q.required("figures").split(separator: ",").map(String.init)
                let svg = try b.sweepPlot(q.required("name"), x: q.required("x"), figures: figures)
                return Response(status: .ok, headers: [.contentType: "image/svg+xml"], body: .init(byteBuffer: ByteBuffer(string: svg)))
            }
        }
        router.get("/api/file") { r, _ in
            await self.respond(r) { b, q in
                let name = try q.required("name")
                let f = try b.file(q.required("digest"), name: name)
                var headers: HTTPFields = [.contentType: f.contentType]
                // A stored file is shown, never run: no script of its own, no sniffing.
                headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
                headers[.xContentTypeOptions] = "nosniff"
                if q["download"] == "1" {
                    let safe = String(name.split(separator: "/").last ?? "file").map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" }
                    headers[.contentDisposition] = "attachment; filename=\"\(String(safe))\""
                }
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: f.bytes)))
            }
        }
    }

    /// A request's query parameters, with the errors a missing or malformed one gets.
    struct Query {
        let values: [String: String]
        subscript(_ name: String) -> String? { values[name] }
        func required(_ name: String) throws -> String {
            guard let v = values[name], !v.isEmpty else { throw StoreBrowser.Failure(notFound: false, description: "the query needs '\(name)'") }
            return v
        }
        func integer(_ name: String) throws -> Int {
            guard let v = Int(try required(name)), v >= 0 else { throw StoreBrowser.Failure(notFound: false, description: "'\(name)' must be a whole number ≥ 0") }
            return v
        }
    }

    func json(_ request: Request? = nil, _ body: @escaping @Sendable (StoreBrowser, Query) throws -> JSONValue) async -> Response {
        await respond(request) { b, q in Routes.json(try body(b, q)) }
    }

    /// Runs `body` off the server's event loops (it reads files); a failure becomes 404 or 400
    /// with its message, in the `{"error": {"message"}}` shape.
    func respond(_ request: Request?, _ body: @escaping @Sendable (StoreBrowser, Query) throws -> Response) async -> Response {
        var values: [String: String] = [:]
        for (k, v) in request?.uri.queryParameters ?? [:] { values[String(k)] = String(v) }
        let query = Query(values: values), browser = self.browser
        do {
            return try await withCheckedThrowingContinuation { c in
                DispatchQueue.global().async { c.resume(with: Result { try body(browser, query) }) }
            }
        } catch let f as StoreBrowser.Failure {
            return APIError(status: f.notFound ? .notFound : .badRequest, message: f.description).response
        } catch {
            return APIError(status: .internalServerError, message: "\(error)", type: "server_error").response
        }
    }
}

/// `--api-key-env` for the interface: the key as a bearer token (scripts) or as a cookie (a
/// browser, which cannot add headers to the page's own requests); `/?key=<key>` sets the cookie
/// and opens the page.
struct UIKey: RouterMiddleware {
    let key: String
    static let cookie = "haps_ui_key"

    func handle(_ request: Request, context: BasicRequestContext, next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
        let bearer = BearerKey(key: key)
        if bearer.accepts(request.headers[.authorization]) { return try await next(request, context) }
        let cookies = (request.headers[.cookie] ?? "").split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        if cookies.contains(where: { bearer.accepts("Bearer " + ($0.hasPrefix(UIKey.cookie + "=") ? String($0.dropFirst(UIKey.cookie.count + 1)) : "")) }) {
            return try await next(request, context)
        }
        if request.uri.path == "/", let given = request.uri.queryParameters["key"], bearer.accepts("Bearer " + String(given)) {
            return Response(status: .seeOther, headers: [.location: "/", .setCookie: "\(UIKey.cookie)=\(given); Path=/; HttpOnly; SameSite=Strict"])
        }
        return APIError(status: .unauthorized, message: "a valid key is required: open /?key=<key> once, or send 'Authorization: Bearer <key>'",
                        code: "invalid_api_key").response
    }
}
