import ArgumentParser
import Foundation
import Hummingbird
import HummingbirdCore
import LLM
import NIOCore
import NN
import Pipeline
import Stages

/// `haps-pipe serve`: a local model over the OpenAI chat-completions protocol and the
/// reference's `haps` protocol, and a retriever over the reference's `/retrieve` protocol.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "haps-pipe serve",
        abstract: "Serve a local model (OpenAI chat completions and the reference's haps protocol), a retriever (/retrieve), or a trained HAPS system (models haps, haps-route).",
        discussion: """
            Endpoints: GET /v1/models, POST /v1/chat/completions (OpenAI), POST / (the reference's \
            model protocol), POST /retrieve (the reference's retrieval protocol), GET /metrics \
            (Prometheus). Concurrent chat requests are batched into the engine. Binds to loopback \
            unless --host says otherwise. Ctrl-C finishes the requests in flight, then exits.

            --system serves a trained HAPS system from the store: model "haps" routes the question \
            (the last user message), makes each chosen candidate's LoRA update and runs the \
            teacher/student dialogue, answering with the final answer and a "haps" object (action, \
            teacher, student, distribution, tokens; the turns with "haps": {"transcript": true}); \
            model "haps-route" answers with the routing decision only. --retriever, when given, is \
            the dialogue's retriever too (docs/serve.md, "Serving a trained system").

            The reference's ports: models on 2024-2026, the retriever on 2022 (docs/serve.md).

            Examples:
              haps-pipe serve --model models/tiny-qwen --port 2025
              haps-pipe serve --model /data/Llama-3.1-8B-Instruct --engine torch --device cuda:0 --port 2024
              haps-pipe serve --retriever models/all-MiniLM-L6-v2 --port 2022
              HAPS_KEY=secret haps-pipe serve --model models/tiny-qwen --api-key-env HAPS_KEY --host 0.0.0.0
              haps-pipe serve --system quickstart/rl_train --questions quickstart/world_test --port 8000
              haps-pipe serve --system quickstart/sft_train --model agent_a=http://127.0.0.1:2024/v1 --model agent_b=http://127.0.0.1:2025/v1 --retriever lexical
            """)

    @Option(help: ArgumentHelp("A model directory to serve (Hugging Face layout, with tokenizer.json); with --system, NAME=DIR or NAME=URL gives candidate NAME's model (a directory, or an OpenAI-compatible server's /v1 URL). Repeatable.",
                               valueName: "dir|name=dir|name=url")) var model: [String] = []
    @Option(help: ArgumentHelp("A trained HAPS system to serve as models \"haps\" and \"haps-route\": an rl-train result (router and generators) or an sft-train result (router only), named as `show` names results (STAGE, PIPELINE/STAGE or a digest), or a directory `haps-pipe export` made of one (then --model NAME=..., --retriever and the dialogue's flags say the rest).",
                               valueName: "result")) var system: String?
    @Option(help: ArgumentHelp("With --system: the artifact store holding it.", valueName: "dir")) var store: String = "artifacts"
    @Option(help: ArgumentHelp("With --system: questions whose paragraphs the server knows (a questions.jsonl or a stored questions result, e.g. quickstart/world_test); a request may instead send its own as haps.context. Repeatable.",
                               valueName: "file|result")) var questions: [String] = []
    @Option(help: ArgumentHelp("With --system: the dialogue's prompt set, instead of the result's (an sft-train result's default: standard).", valueName: "standard|embedded"))
    var prompts: String?
    @Option(help: "With --system: the dialogue's search budget, instead of the result's.") var budget: Int?
    @Option(help: "With --system: the dialogue's longest reply in tokens, instead of the result's.") var replyTokens: Int?
    @Option(help: "The model's id in /v1/models and requests (default: the directory's name).") var name: String?
    @Option(help: ArgumentHelp("Retriever to serve at /retrieve: 'lexical' (BM25) or a sentence-transformers directory.", valueName: "lexical|dir"))
    var retriever: String?
    @Option(help: "Address to bind (loopback by default; 0.0.0.0 for every interface).") var host: String = "127.0.0.1"
    @Option(help: "Port (0: any free port, printed at start).") var port: Int = 8000
    @Option(help: ArgumentHelp("Require 'Authorization: Bearer <key>', the key read from this environment variable.", valueName: "var"))
    var apiKeyEnv: String?
    @Option(help: "Largest request body, in bytes.") var maxBodyBytes: Int = 4 << 20
    @Option(help: "Largest max_tokens a request may ask for.") var maxTokensLimit: Int = 2048
    @Option(help: "Requests that may wait for the engine before new ones get 429.") var maxQueue: Int = 256
    @Option(help: "Most sequences generated in one batch.") var maxBatch: Int = 16
    @Option(help: ArgumentHelp("Seconds a connection may take to send a request's head, or stay silent (between requests, or in the middle of a body), before it is closed.",
                               valueName: "seconds")) var idleTimeout: Double = 30
    @Option(help: ArgumentHelp("Seconds a request's body may take to arrive in full, counted from its head; a slower one has its connection closed.",
                               valueName: "seconds")) var readTimeout: Double = 60
    @Option(help: ArgumentHelp("Most connections open at once. A connection past it closes the one idle the longest (no request being answered), or is closed itself if none is. Lowered to fit the open-file limit, whose soft value is raised to the hard one.",
                               valueName: "n")) var maxConnections: Int = 512
    @Option(help: "OpenBLAS threads (default: all cores; with --system, 1: concurrent questions are the parallelism, and calls that each take every core slow one another down).") var threads: Int?
    @Option(help: ArgumentHelp("What generates: cpu (this program's engine) or torch (the PyTorch worker, for GPUs; its Python is HAPS_TORCH_PYTHON; docs/engine.md).",
                               valueName: "cpu|torch")) var engine: String = "cpu"
    @Option(help: ArgumentHelp("--engine torch: the model's device.", valueName: "cpu|cuda|cuda:N")) var device: String = "cuda"
    @Option(help: ArgumentHelp("--engine torch: the model's dtype.", valueName: "float32|bfloat16")) var dtype: String = "bfloat16"

    func validate() throws {
        if plainModels.isEmpty && retriever == nil && system == nil { throw ValidationError("give --model DIR, --retriever lexical|DIR, --system RESULT, or several") }
        if plainModels.count > 1 { throw ValidationError("--model DIR serves one model (got \(plainModels.count)); NAME=DIR gives a --system's candidate") }
        if system == nil, let named = candidateModels.keys.first { throw ValidationError("--model \(named)=...: a candidate's model is for --system") }
        if let prompts, BuiltinPrompts(rawValue: prompts) == nil { throw ValidationError("--prompts is standard or embedded (got '\(prompts)')") }
        if (budget ?? 0) < 0 || (replyTokens ?? 1) < 1 { throw ValidationError("--budget must be 0 or more and --reply-tokens positive") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be between 0 and 65535") }
        if maxBodyBytes < 1024 || maxTokensLimit < 1 || maxQueue < 1 || maxBatch < 1 {
            throw ValidationError("--max-body-bytes (≥ 1024), --max-tokens-limit, --max-queue and --max-batch must be positive")
        }
        if !(idleTimeout > 0 && idleTimeout <= 86400) || !(readTimeout > 0 && readTimeout <= 86400) {
            throw ValidationError("--idle-timeout and --read-timeout must be between 0 and 86400 seconds (got \(idleTimeout) and \(readTimeout))")
        }
        if maxConnections < 1 { throw ValidationError("--max-connections must be positive (got \(maxConnections))") }
        if !["cpu", "torch"].contains(engine) { throw ValidationError("--engine is cpu or torch (got '\(engine)')") }
        if !["float32", "bfloat16"].contains(dtype) { throw ValidationError("--dtype is float32 or bfloat16 (got '\(dtype)')") }
        if !TorchEngine.Placement.isDevice(device) {
            throw ValidationError("--device is cpu, cuda or cuda:N (got '\(device)')")
        }
    }

    func run() async throws {
        if let threads { try BLAS.shared().threads = threads } else if system != nil { try BLAS.shared().threads = 1 }
        var key: String?
        if let env = apiKeyEnv {
            guard let v = ProcessInfo.processInfo.environment[env] else { throw ValidationError("--api-key-env names \(env), which is not set") }
            guard !v.isEmpty else { throw ValidationError("--api-key-env names \(env), which is empty") }
            key = v
        }
        if key == nil && !["127.0.0.1", "localhost", "::1"].contains(host) {
            FileHandle.standardError.write(Data("haps-pipe serve: warning: listening on \(host) without --api-key-env: anyone who can reach this address can use the server\n".utf8))
        }
        let chat = try plainModels.first.map { try served(directory: $0) }
        let metrics = ServeMetrics()
        let hapsSystem = try system.map { try openSystem($0, metrics: metrics) }
        let search: (any Retriever)? = try retriever.map { r in
            r == "lexical" ? LexicalRetriever() as any Retriever : DenseRetriever(encoder: try SentenceEncoder(directory: r))
        }
        let limits = Limits(maxBodyBytes: maxBodyBytes, maxTokens: maxTokensLimit)
        let router = Router()
        router.add(middleware: RequestLog(metrics: metrics))
        router.add(middleware: BodyLimit(maxBytes: maxBodyBytes))
        if let key { router.add(middleware: BearerKey(key: key)) }
        Routes(model: chat, retriever: search, limits: limits, system: hapsSystem, metrics: metrics).register(on: router)
        let host = self.host
        let app = Application(router: router, server: .http1(configuration: connectionHandling()),
                              configuration: .init(address: .hostname(host, port: port), serverName: "haps-pipe"),
                              onServerRunning: { channel in
                                  let bound = channel.localAddress?.port ?? 0
                                  let line = "haps-pipe serve: listening on http://\(host):\(bound)" +
                                      (chat.map { " (model \($0.name)\(engine == "torch" ? ", torch on \(device), \(dtype)" : ""))" } ?? "") + (search.map { " (retriever \($0.identity))" } ?? "")
                                      + (hapsSystem.map { " (system \($0.served.label) as models haps, haps-route)" } ?? "") + "\n"
                                  FileHandle.standardOutput.write(Data(line.utf8))
                              })
        try await app.runService()
        chat?.stop()
        FileHandle.standardError.write(Data("haps-pipe serve: stopped\n".utf8))
    }

    /// `--model` values that are a directory to serve (no `NAME=`).
    var plainModels: [String] { model.filter { !isCandidate($0) } }
    /// `--model NAME=DIR|URL` values: a served system's candidates.
    var candidateModels: [String: String] {
        Dictionary(model.filter(isCandidate).map { m in
            let eq = m.firstIndex(of: "=")!
            return (String(m[..<eq]), String(m[m.index(after: eq)...]))
        }) { _, b in b }
    }
    /// NAME=VALUE where NAME has no path separator (a directory named with "=" still serves).
    func isCandidate(_ m: String) -> Bool {
        guard let eq = m.firstIndex(of: "=") else { return false }
        return !m[..<eq].contains("/") && !m[..<eq].isEmpty
    }

    /// The trained system `--system` names, with its candidates, retriever and known questions,
    /// on this program's engine (CPU), checked before the server listens.
    func openSystem(_ target: String, metrics: ServeMetrics) throws -> SystemRoutes {
        var options = ServedSystem.Options()
        options.models = candidateModels
        options.questions = questions
        options.retriever = retriever
        options.prompts = prompts.flatMap(BuiltinPrompts.init(rawValue:))
        options.budget = budget
        options.maxTokens = replyTokens
        options.threads = threads ?? 1  // bench/serve: 2 threads a call on 2 cores gave 6 questions/s from 8 clients, 1 gave 28
        if engine == "torch" { options.engine = try torchEngine(log: "system") }
        let served: ServedSystem
        do { served = try ServedSystem.open(store: FileIO.isDirectory(store) ? try Store(root: store) : nil, target: target, options: options) } catch {
            throw ValidationError("--system \(target): \(error)")
        }
        let space = served.space, names = served.names
        metrics.actionLabels = { a in
            "action=\"\(a)\"," + zip(space.roles, space.assignment(of: a)).map { "\($0)=\"\(ServeMetrics.escaped(names[$1]))\"" }.joined(separator: ",")
        }
        let note = served.canAnswer ? (served.canAdapt ? "answers with the generated updates" : "answers without updates (\"lora\": false)")
                                    : "routes only (\(served.missing ?? ""))"
        FileHandle.standardError.write(Data("haps-pipe serve: system \(served.label) (\(served.kind.rawValue), candidates \(served.names.joined(separator: ", "))): \(note); \(served.knownQuestions) known questions\n".utf8))
        return SystemRoutes(served: served, metrics: metrics, maxQueue: maxQueue)
    }

    /// The model to serve, on the engine asked for: the torch worker is started and checked
    /// (torch, transformers, the device) before the server listens.
    func served(directory dir: String) throws -> ServedModel {
        let name = self.name ?? Path(dir).lastComponent
        if engine == "cpu" {
            let m = try LocalChatModel(directory: dir, name: name)
            return ServedModel(name: name, codec: m.codec, maxPositions: m.model.config.maxPositions,
                               generator: CPUGenerator(batcher: GenerationBatcher(model: m.model, maxBatch: maxBatch, maxQueue: maxQueue)))
        }
        let torch = try torchEngine(log: "model")
        let config = try DecoderConfig.load(dir + "/config.json")
        let model = try torch.loadModel(directory: dir, name: name, trainable: false)
        return ServedModel(name: name, codec: try ChatCodec(directory: dir, config: config), maxPositions: config.maxPositions,
                           generator: TorchGenerator(engine: torch, model: model, maxQueue: maxQueue))
    }

    /// The torch engine's worker, started and checked, on `--device` in `--dtype`; its log in
    /// the temporary directory.
    func torchEngine(log what: String) throws -> TorchEngine {
        guard let script = TorchWorkerLocation.script() else { throw ValidationError(TorchWorkerLocation.notFound) }
        let python = ProcessInfo.processInfo.environment["HAPS_TORCH_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
        let log = NSTemporaryDirectory() + "haps-pipe-serve-torch-\(what)-\(getpid()).log"
        return try TorchEngine(python: python, script: script, log: log, placement: .init(device), dtype: dtype)
    }

    /// The connections' limits: Hummingbird's idle timeout (it also bounds the time to send a
    /// request's head), and per connection a `ConnectionGuard` (the cap, the body's deadline).
    /// The cap is kept under the open-file limit, less what the server needs for itself.
    func connectionHandling() -> HTTP1Channel.Configuration {
        let files = ConnectionCap.raiseFileLimit()
        let cap = max(1, min(maxConnections, files - ConnectionCap.reservedFiles))
        if cap < maxConnections {
            FileHandle.standardError.write(Data("haps-pipe serve: warning: --max-connections lowered from \(maxConnections) to \(cap) to stay under the open-file limit (\(files); ulimit -n)\n".utf8))
        }
        let connections = ConnectionCap(limit: cap)
        let read = TimeAmount.nanoseconds(Int64(readTimeout * 1e9))
        return HTTP1Channel.Configuration(additionalChannelHandlers: [ConnectionGuard(cap: connections, readTimeout: read)],
                                          idleTimeout: .nanoseconds(Int64(idleTimeout * 1e9)))
    }
}

struct Path {
    let path: String
    init(_ p: String) { path = p }
    var lastComponent: String { URL(fileURLWithPath: path).lastPathComponent }
}
