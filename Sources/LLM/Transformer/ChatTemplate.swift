/// The chat formats of the three families, as their model cards define them, rendered to text
/// that ends with the assistant's turn opening (the "generation prompt").
///
/// - `llama3`: `<|begin_of_text|>` then per message `<|start_header_id|>role<|end_header_id|>\n\n`
///   + content (trimmed) + `<|eot_id|>`; generation opens an assistant header.
/// - `qwen2`: `<|im_start|>role\ncontent<|im_end|>\n` per message, with Qwen2.5's default system
///   message when none is given; generation opens `<|im_start|>assistant\n`.
/// - `mistral`: `<s>[INST] user[/INST]assistant</s>...`, a system message joined to the last user
///   message with a blank line (Mistral-7B-Instruct-v0.3).
public enum ChatTemplate: String, Sendable, CaseIterable {
    case llama3, qwen2, mistral

    public static func forFamily(_ f: DecoderConfig.Family) -> ChatTemplate {
        switch f { case .llama: .llama3; case .qwen2: .qwen2; case .mistral: .mistral }
    }

    public static let qwenDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

    public func render(_ messages: [ChatMessage]) -> String {
        switch self {
        case .llama3:
            var s = "<|begin_of_text|>"
            for m in messages { s += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n\(m.content.trimmingSpaces)<|eot_id|>" }
            return s + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        case .qwen2:
            var s = ""
            if messages.first?.role != "system" { s += "<|im_start|>system\n\(ChatTemplate.qwenDefaultSystem)<|im_end|>\n" }
            for m in messages { s += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
            return s + "<|im_start|>assistant\n"
        case .mistral:
            var system: String?
            var rest = messages
            if rest.first?.role == "system" { system = rest.removeFirst().content }
            let lastUser = rest.lastIndex { $0.role == "user" }
            var s = "<s>"
            for (i, m) in rest.enumerated() {
                if m.role == "user" {
                    let content = i == lastUser && system != nil ? system! + "\n\n" + m.content : m.content
                    s += "[INST] \(content)[/INST]"
                } else {
                    s += "\(m.content)</s>"
                }
            }
            return s
        }
    }

    /// The tokens that end an assistant turn, besides the model's end-of-sequence ids.
    public var endOfTurn: [String] {
        switch self { case .llama3: ["<|eot_id|>"]; case .qwen2: ["<|im_end|>"]; case .mistral: ["</s>"] }
    }
}
