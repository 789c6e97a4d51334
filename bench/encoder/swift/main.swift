// bench/encoder: sentences/s of the MiniLM encoder on HotpotQA paragraphs, and the gold-paragraph
// hit rate of the dense and lexical retrievers over the shared questions. Prints one JSON object.
// Run by bench/encoder/run.sh beside the sentence-transformers peer (st_peer.py).
import Foundation
import LLM
import NN
import Stages

let env = ProcessInfo.processInfo.environment
let threads = Int(env["THREADS"] ?? "2")!
let count = Int(env["SENTENCES"] ?? "512")!
let batch = Int(env["BATCH"] ?? "32")!
let shared = env["SHARED"] ?? "dataset"
let model = env["MODEL"] ?? "models/all-MiniLM-L6-v2"
try BLAS.shared().threads = threads

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
}

var questions: [HotpotQuestion] = []
for split in ["train", "valid", "test"] { questions += try HotpotQA.load("\(shared)/\(split).jsonl") }
let paragraphs = Array(questions.flatMap(\.paragraphs).prefix(count))
let encoder = try SentenceEncoder(directory: model)
_ = try encoder.embed(Array(paragraphs.prefix(batch)))  // warm-up
let time = try seconds {
    var i = 0
    while i < paragraphs.count { _ = try encoder.embed(Array(paragraphs[i..<min(i + batch, paragraphs.count)])); i += batch }
}
var out: [String: Any] = ["threads": threads, "sentences": paragraphs.count, "batch": batch, "sentences_per_s": Double(paragraphs.count) / time]

if env["HIT_RATE"] != nil {
    let dense = DenseRetriever(encoder: encoder), lexical = LexicalRetriever()
    var searches = 0, denseHits = 0, lexicalHits = 0
    for q in questions {
        for title in q.goldTitles {
            guard let gold = q.context.firstIndex(where: { $0.title == title }) else { continue }
            searches += 1
            if try dense.bestIndex(entity: title, paragraphs: q.paragraphs) == gold { denseHits += 1 }
            if lexical.bestIndex(entity: title, paragraphs: q.paragraphs) == gold { lexicalHits += 1 }
        }
    }
    out["searches"] = searches; out["dense_hits"] = denseHits; out["lexical_hits"] = lexicalHits
    out["embeddings_computed"] = dense.cacheCounts.computed; out["embeddings_reused"] = dense.cacheCounts.reused
}
print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
