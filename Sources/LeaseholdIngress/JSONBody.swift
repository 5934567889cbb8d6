import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Reads and decodes JSON request bodies with the answers the HTTP contract promises:
/// 415 for a content type other than JSON, 413 for a body over the limit, 400 for malformed
/// JSON, 422 for a missing, null or mistyped field — each with a one-line reason.
struct JSONBody {
    let maxBytes: Int

    func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        try Self.decodeJSON(T.self, from: try await read(request))
    }

    /// The body's bytes, after the content type and size checks.
    func read(_ request: Request) async throws -> Data {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) }
        guard mediaType == "application/json" else {
            throw HTTPError(
                .unsupportedMediaType,
                message: "Content-Type must be application/json, got \(contentType.isEmpty ? "none" : contentType)")
        }
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > maxBytes {
            throw HTTPError(.contentTooLarge, message: "body is \(declared) bytes; the limit is \(maxBytes)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw HTTPError(.contentTooLarge, message: "body is over the limit of \(maxBytes) bytes")
        }
        return Data(buffer.readableBytesView)
    }

    static func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            throw HTTPError(.badRequest, message: "malformed JSON")
        } catch let DecodingError.keyNotFound(key, context) {
            throw HTTPError(.unprocessableContent, message: "missing field \(path(context.codingPath + [key]))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw HTTPError(.unprocessableContent, message: "field \(path(context.codingPath)) must not be null")
        } catch let DecodingError.typeMismatch(expected, context) {
            throw HTTPError(
                .unprocessableContent,
                message: "field \(path(context.codingPath)) must be \(describe(expected))")
        } catch let DecodingError.dataCorrupted(context) {
            throw HTTPError(
                .unprocessableContent,
                message: "field \(path(context.codingPath)) is invalid: \(context.debugDescription)")
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "(body)" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int64.Type, is Int.Type, is Int32.Type: "an integer"
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        default: "\(type)"
        }
    }
}
