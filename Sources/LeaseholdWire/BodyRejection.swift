import Foundation

/// Why a request body was refused: `status` is 400 (not a JSON body the strict rules accept) or
/// 422 (JSON, but a field is missing, null, mistyped or invalid); `reason` is the one line the
/// HTTP answer carries.
public struct BodyRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Int, Sendable {
        case malformed = 400
        case invalid = 422
    }

    public var kind: Kind
    public var reason: String

    /// Control characters in `reason` (a newline in an echoed field, say) become `?`, so the
    /// reason stays one line whatever the body put in it — the fuzzer found
    /// `"event":"payme\nt.canceled"` echoed with its newline.
    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = String(
            String.UnicodeScalarView(
                reason.unicodeScalars.map { scalar in
                    scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}"
                        ? "?" : scalar
                }))
    }

    public var status: Int { kind.rawValue }
    public var description: String { "\(status) \(reason)" }
}

/// The JSON decoding every ingress body goes through: ``StrictJSON`` first, then `JSONDecoder`,
/// its errors turned into one-line reasons.
public enum IngressJSON {
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws(BodyRejection) -> T {
        try StrictJSON.check(Array(data))
        return try decodeChecked(type, from: data)
    }

    /// ``decode(_:from:)`` of a body that has passed ``StrictJSON`` already.
    static func decodeChecked<T: Decodable>(_ type: T.Type, from data: Data) throws(BodyRejection) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw BodyRejection(.invalid, "missing field \(path(context.codingPath + [key]))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw BodyRejection(.invalid, "field \(path(context.codingPath)) must not be null")
        } catch let DecodingError.typeMismatch(expected, context) {
            throw BodyRejection(.invalid, "field \(path(context.codingPath)) must be \(describe(expected))")
        } catch let DecodingError.dataCorrupted(context) {
            // The syntax passed StrictJSON, so this is a value that does not fit its field, e.g. 1.5
            // or 2^63 for an integer id (JSONDecoder reports those without a coding path).
            throw BodyRejection(
                .invalid,
                context.codingPath.isEmpty
                    ? "a number does not fit its field (ids are integers within 64 bits)"
                    : "field \(path(context.codingPath)) is invalid: \(oneLine(context.debugDescription))")
        } catch {
            throw BodyRejection(.malformed, "malformed JSON")
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "(body)" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    static func oneLine(_ text: String) -> String {
        String(text.prefix(200).map { $0.isNewline ? " " : $0 })
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int64.Type, is Int.Type, is Int32.Type: "an integer"
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is [String: Any].Type: "an object"
        case is [Any].Type: "an array"
        default: "\(type)"
        }
    }
}
