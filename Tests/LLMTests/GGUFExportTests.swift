import Foundation
import XCTest
import JSON
@testable import LLM
import NN
import TestSupport

/// `export-gguf` against the `gguf` Python package (llama.cpp's own reader and writer library,
/// installed by scripts/test.sh): it reads our file, every tensor equals the model's weight
/// (q and k rows in llama.cpp's `permute` order, as its converter writes them), and the
/// metadata is what llama.cpp reads for a Llama model.
final class GGUFExportTests: XCTestCase {
    func testTheGGUFPackageReadsTheModelWithLlamaCppsLayout() throws {
        let dir = NSTemporaryDirectory() + "gguf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = DecoderConfig(family: .llama, vocabSize: 12, hiddenSize: 16, intermediateSize: 24, layers: 2, heads: 4, kvHeads: 2,
                                   rmsEps: 1e-5, ropeTheta: 10000, eosTokenIDs: [4, 1])
        try DecoderModel.randomlyInitialised(config, seed: 3, std: 0.2).save(directory: dir + "/model")
        let specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        let vocab = specials + ["a", "b", "c", "Ġ", "ab", "Ġa", "abc"]
        let tokenizer: JSONValue = .object([
            ("model", .object([("type", "BPE"), ("vocab", .object(vocab.enumerated().map { ($0.element, .number(Double($0.offset))) })),
                               ("merges", .array([.array(["a", "b"]), .array(["Ġ", "a"]), .array(["ab", "c"])]))])),
            ("added_tokens", .array(specials.enumerated().map { .object([("id", .number(Double($0.offset))), ("content", .string($0.element)), ("special", true)]) })),
        ])
        try tokenizer.canonical.write(toFile: dir + "/model/tokenizer.json", atomically: true, encoding: .utf8)
        try Data(try GGUFExport.bytes(ofModelIn: dir + "/model", name: "tiny")).write(to: URL(fileURLWithPath: dir + "/tiny.gguf"))

        let text = try Python.output(#"""
            import json, struct, sys
            import gguf, numpy as np
            d = sys.argv[1]
            raw = open(d + "/model/model.safetensors", "rb").read()
            n = struct.unpack("<Q", raw[:8])[0]
            header = json.loads(raw[8:8 + n])
            hf = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype=np.float32).reshape(v["shape"])
                  for k, v in header.items() if k != "__metadata__"}
            def permute(w, heads):  # llama.cpp's convert_hf_to_gguf.py
                return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
            names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
            for l in range(2):
                for g, h in [("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                             ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
                             ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")]:
                    names[f"blk.{l}.{g}.weight"] = f"model.layers.{l}.{h}.weight"
            r = gguf.GGUFReader(d + "/tiny.gguf")
            problems = []
            seen = set()
            for t in r.tensors:
                seen.add(t.name)
                want = hf[names[t.name]]
                if ".attn_q." in t.name: want = permute(want, 4)
                if ".attn_k." in t.name: want = permute(want, 2)
                got = np.asarray(t.data).reshape(want.shape)
                if t.tensor_type != gguf.GGMLQuantizationType.F32 or list(t.shape) != list(reversed(want.shape)) or not np.array_equal(got, want):
                    problems.append(t.name)
            if seen != set(names): problems.append(f"tensors {sorted(seen ^ set(names))}")
            def value(k):
                f = r.fields[k]
                return f.contents()
            expect = {"general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 16, "llama.feed_forward_length": 24,
                      "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 4,
                      "llama.vocab_size": 12, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.eos_token_id": 1,
                      "tokenizer.ggml.eot_token_id": 4, "tokenizer.ggml.add_bos_token": False,
                      "tokenizer.ggml.tokens": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                                                "a", "b", "c", "Ġ", "ab", "Ġa", "abc"],
                      "tokenizer.ggml.token_type": [3] * 5 + [1] * 7, "tokenizer.ggml.merges": ["a b", "Ġ a", "ab c"]}
            for k, v in expect.items():
                if value(k) != v: problems.append(f"{k}: {value(k)!r} != {v!r}")
            if abs(value("llama.attention.layer_norm_rms_epsilon") - 1e-5) > 1e-12: problems.append("rms eps")
            if abs(value("llama.rope.freq_base") - 10000) > 0: problems.append("rope base")
            print(json.dumps({"tensors": len(r.tensors), "problems": problems}))
            """#, arguments: [dir], requiring: ["gguf", "numpy"])
        let result = try JSONParser.parse(text)
        XCTAssertEqual(result["tensors"]?.intValue, 21, text)
        XCTAssertEqual(result["problems"]?.arrayValue?.count, 0, text)
    }
}
