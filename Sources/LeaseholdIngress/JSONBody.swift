import Foundation
import HTTPTypes
import Hummingbird
import LeaseholdWire
import NIOCore

/// Reads JSON request bodies with the answers the HTTP contract promises: 415 for a content type
/// other than JSON (or JSON declared in a charset other than UTF-8), 413 for a body over the
/// limit (from `Content-Length` before reading anything, else as soon as the limit is passed),
/// then the body rules of ``IngressBodies`` (400 for anything ``StrictJSON`` refuses, 422 for a
/// missing, null, mistyped or invalid field) — each with a one-line reason.
///
/// A refused request whose body was not read to the end costs nothing more: the connection is
/// closed after the answer (``UnreadRequestHandler``) instead of draining the rest.
struct JSONBody {
    let maxBytes: Int

    init(_ configuration: IngressConfiguration) {
        self.maxBytes = configuration.maxBodyBytes
    }

    func decode<T>(_ decoder: (Data) throws(BodyRejection) -> T, from request: Request) async throws -> T {
        try Self.check(decoder, try await read(request))
    }

    /// Runs a body decoder of ``IngressBodies``, its refusal as the HTTP error.
    static func check<T>(_ decoder: (Data) throws(BodyRejection) -> T, _ body: Data) throws -> T {
        do {
            return try decoder(body)
        } catch {
            throw HTTPError(.init(code: error.status), message: error.reason)
        }
    }

    /// A header parameter without the spaces and tabs around it (HTTP's optional whitespace), in
    /// plain Swift: Foundation's `trimmingCharacters` bridges through `NSString` on every request.
    static func trimmingWhitespace(_ text: Substring) -> String {
        String(trimming(text) { $0 == " " || $0 == "\t" })
    }

    static func trimming(_ text: Substring, where drop: (Character) -> Bool) -> Substring {
        var text = text
        while let first = text.first, drop(first) { text.removeFirst() }
        while let last = text.last, drop(last) { text.removeLast() }
        return text
    }

    /// The body's bytes, after the content type and size checks.
    func read(_ request: Request) async throws -> Data {
        let contentTypes = request.headers[values: .contentType]
        let contentType = contentTypes.first?.lowercased() ?? ""
        let parameters = contentType.split(separator: ";").map(Self.trimmingWhitespace)
        guard contentTypes.count <= 1, parameters.first == "application/json" else {
            throw HTTPError(
                .unsupportedMediaType,
                message: contentTypes.count > 1
                    ? "Content-Type must be given once"
                    : "Content-Type must be application/json, got \(contentType.isEmpty ? "none" : contentType)")
        }
        // JSON is UTF-8 (RFC 8259 §8.1). A sender declaring another charset means its bytes to be
        // read in it, which ingress does not do: refused rather than misread. No charset, or utf-8.
        for parameter in parameters.dropFirst() where parameter.hasPrefix("charset=") {
            let charset = String(Self.trimming(parameter.dropFirst("charset=".count)) { $0 == "\"" })
            guard charset == "utf-8" || charset == "utf8" else {
                throw HTTPError(.unsupportedMediaType, message: "JSON must be UTF-8, got charset=\(charset)")
            }
        }
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > maxBytes {
            throw HTTPError(.contentTooLarge, message: "body is \(declared) bytes; the limit is \(maxBytes)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw HTTPError(.contentTooLarge, message: "body is over the limit of \(maxBytes) bytes")
        }
        // A body cut short (the connection closed by the body timeout, say) is never decoded: a
        // prefix of a JSON body can be valid JSON too.
        if let declared, declared != buffer.readableBytes {
            throw HTTPError(.badRequest, message: "body ended after \(buffer.readableBytes) of \(declared) bytes")
        }
        return Data(buffer.readableBytesView)
    }
}
