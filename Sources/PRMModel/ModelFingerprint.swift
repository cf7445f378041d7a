import Foundation
import PRMCore

/// What names a loaded reward model in the service's replies (`model_fingerprint`), its `info`
/// and the user log's lines: FNV-1a over the bit patterns of every trained parameter and over the
/// trained users' ids and indices, as 16 hex digits. Equal checkpoints give equal fingerprints in
/// every process (the workers behind one proxy agree); users added later (`prm adapt`, the
/// `adapt` op) are not part of it, since the log names the model they were fitted on.
public enum ModelFingerprint {
    public static func of(_ model: RewardModel, users: UserTable) -> String {
        // The values as loaded, also when bf16 or int8 inference released the fp32 matrices.
        var fnv = model.parameters.valuesHash()
        for (id, index) in users.indices.sorted(by: { $0.key < $1.key }) {
            for byte in id.utf8 { fnv.mix(UInt64(byte)) }
            fnv.mix(UInt64(bitPattern: Int64(index)))
        }
        let hex = String(fnv.hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
