import Foundation
import PRMCore

/// Reading Hugging Face `config.json` files into `Codable` config structs, with errors that name
/// the file and the key instead of Swift's DecodingError dump.
enum HFConfig {
    static func decode<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        let data = try readFile(url)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw ModelError(file: url, DecodingProblem(error).message)
        }
    }

    /// The `model_type` field, which picks the architecture.
    static func modelType(at url: URL) throws -> String {
        struct Header: Decodable { let model_type: String? }
        let header = try decode(Header.self, from: url)
        guard let type = header.model_type else { throw ModelError(file: url, "missing field 'model_type'") }
        return type
    }

    /// A JSON object file read with prm's strict reader (not JSONSerialization, whose NSNumber
    /// answers `as? Int` for `true` and for 1.0), or an error naming the file.
    static func jsonObject(_ url: URL) throws -> JSONObject {
        let parsed: JSONValue
        do { parsed = try JSONReader.parse(readFile(url)) } catch let error as JSONParseError { throw ModelError(url.path, cause: error) }
        guard let object = parsed.object else { throw ModelError(file: url, "expected a JSON object, got \(parsed.kind.withArticle)") }
        return object
    }

    static func readFile(_ url: URL) throws -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else { throw ModelError(file: url, "file not found") }
        do { return try Data(contentsOf: url) } catch { throw ModelError(file: url, "cannot read: \(error.localizedDescription)") }
    }
}

/// Throws unless `condition`; for config values that decode but make no sense.
func require(_ condition: Bool, _ url: URL, _ problem: @autoclosure () -> String) throws {
    if !condition { throw ModelError(file: url, problem()) }
}
