// swift-tools-version:6.1
// The haps-pipe package: one module per layer (docs/architecture.md).
//   JSON, Threading  the lowest layer: JSON values; the one lock type and thread spawner
//   Pipeline  generic dataflow framework (spec, store, scheduler, journals)
//   NN        Float32 tensors on OpenBLAS
//   LLM       model and retriever backends
//   Stages    the HAPS domain and its stage types
//   haps-pipe the command-line tool
import PackageDescription

let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]
/// The numeric modules are optimised in debug builds too: the test suite runs real models
/// (MiniLM, the transformers fixtures), which unoptimised loops make ~30x slower.
let numeric: [SwiftSetting] = upcoming + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "haps-pipe",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "haps-pipe", targets: ["haps-pipe"]),
        .executable(name: "haps-pipe-serve", targets: ["haps-pipe-serve"]),
        .library(name: "Pipeline", targets: ["Pipeline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // SHA-256 (Pipeline's digests). 4.x: its Crypto module imports FoundationEssentials, not
        // all of Foundation (3.x did), so linking it keeps the tool's start-up (docs/architecture.md).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // System-library shims (Debian packages libopenblas-dev, libcurl4-openssl-dev, liblz4-dev).
        // OpenBLAS and libcurl are header-only here and loaded with dlopen on first use: linked,
        // they cost every invocation ~8 ms of start-up (libcurl's dependency tree, OpenBLAS's
        // thread pool), which a no-op `haps-pipe run` must not pay. LZ4 is small and linked.
        .systemLibrary(name: "COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4",
                       providers: [.apt(["liblz4-dev"])]),

        // The lowest layer: JSON values with source locations, canonical and pretty writers; and
        // the one lock type and thread spawner every module uses.
        .target(name: "JSON", swiftSettings: upcoming),
        .target(name: "Threading", swiftSettings: upcoming),
        .target(name: "Pipeline",
                dependencies: ["JSON", "Threading", "CLZ4",
                               .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: upcoming),
        .target(name: "NN", dependencies: ["JSON", "Threading", "COpenBLAS"], swiftSettings: numeric),
        .target(name: "LLM", dependencies: ["JSON", "NN", "CCurl"], swiftSettings: numeric),
        .target(name: "Stages", dependencies: ["Pipeline", "NN", "LLM"], swiftSettings: upcoming),
        .executableTarget(
            name: "haps-pipe",
            dependencies: ["Pipeline", "Stages", "LLM", "NN", "JSON",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: upcoming),

        // `haps-pipe serve` runs this program (beside haps-pipe), so that the server's SwiftNIO
        // stack is not linked into, nor loaded by, every other command (docs/serve.md).
        .executableTarget(
            name: "haps-pipe-serve",
            dependencies: ["LLM", "NN", "JSON", "Pipeline", "Stages",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: upcoming),

        // bench/engine's Swift side (run by bench/engine/run.sh; not part of the tool).
        .executableTarget(name: "engine-bench", dependencies: ["LLM", "NN"], path: "bench/engine/swift", swiftSettings: upcoming),
        .executableTarget(name: "router-bench", dependencies: ["LLM", "NN", "JSON"], path: "bench/router/swift", swiftSettings: upcoming),
        .executableTarget(name: "rl-bench", dependencies: ["LLM", "NN", "JSON"], path: "bench/rl/swift", swiftSettings: upcoming),
        .executableTarget(name: "encoder-bench", dependencies: ["LLM", "NN", "Stages"], path: "bench/encoder/swift", swiftSettings: upcoming),

        // What several test targets use: the one way to run the Python the tests start as
        // oracles (`Python`), and the loopback fault server (`FaultServer`, fault_server.py).
        .target(name: "TestSupport", path: "Tests/TestSupport", exclude: ["fault_server.py"], swiftSettings: upcoming),
        // One test target per module, depending on that module and those below it only.
        .testTarget(name: "JSONTests", dependencies: ["JSON", "TestSupport"], swiftSettings: upcoming),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "TestSupport"], swiftSettings: upcoming),
        .testTarget(name: "NNTests", dependencies: ["NN", "JSON", "TestSupport"], swiftSettings: upcoming),
        // Stages only for ParameterGeneratorTests.swift (JointRLTrainer's tests), until it moves to StagesTests.
        .testTarget(name: "LLMTests", dependencies: ["LLM", "NN", "JSON", "TestSupport", "Stages"], swiftSettings: upcoming),
        .testTarget(name: "StagesTests", dependencies: ["Stages", "Pipeline", "LLM", "NN", "TestSupport"], swiftSettings: upcoming),
        .testTarget(name: "CLITests", dependencies: ["haps-pipe", "TestSupport"], exclude: ["ui_browser.py"], swiftSettings: upcoming),
    ]
)
