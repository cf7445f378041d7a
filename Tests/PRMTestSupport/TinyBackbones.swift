import Foundation

/// Folders for small randomly initialised backbones on real tokenizers, for fast model tests:
/// weights are initialised by the caller (BERT) or written by Tests/Reference/make_gpt2.py.
public enum TinyBackbones {
    /// A folder with a tiny BERT config.json and all-MiniLM-L6-v2's tokenizer.json.
    public static func bert(hidden: Int = 32, layers: Int = 1) throws -> URL {
        let folder = try TestSupport.temporaryDirectory("tiny-bert")
        let config: [String: Any] = ["model_type": "bert", "vocab_size": 30522, "hidden_size": hidden, "num_hidden_layers": layers,
                                     "num_attention_heads": 4, "intermediate_size": 2 * hidden, "max_position_embeddings": 128,
                                     "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"]
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: TestSupport.miniLMDirectory().appendingPathComponent("tokenizer.json"),
                                         to: folder.appendingPathComponent("tokenizer.json"))
        return folder
    }

    /// A random GPT-2 folder (Tests/Reference/make_gpt2.py) with a byte-level BPE trained on the corpus.
    public static func gpt2() throws -> URL {
        let folder = try TestSupport.temporaryDirectory("tiny-gpt2")
        let tokenizer = folder.appendingPathComponent("bpe.json")
        try TestSupport.runPython(TestSupport.referenceScript("train_bpe.py"),
                                  ["--corpus", TestSupport.lengthprefDirectory.appendingPathComponent("dev.jsonl").path,
                                   "--vocab-size", "400", "--out", tokenizer.path])
        try TestSupport.runPython(TestSupport.referenceScript("make_gpt2.py"),
                                  ["--out", folder.path, "--layers", "1", "--heads", "2", "--embd", "16", "--positions", "128",
                                   "--seed", "3", "--tokenizer", tokenizer.path])
        return folder
    }
}
