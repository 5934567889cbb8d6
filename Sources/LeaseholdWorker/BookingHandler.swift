import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdWire

/// `booking`: a booking, cancellation or reschedule (a Telegram callback or `POST /v1/bookings`),
/// applied by ``BookingTransaction`` — the function `leasehold_book`, one statement in autocommit,
/// so one round trip.
struct BookingHandler: MessageHandler {
    let transaction: BookingTransaction

    var kind: String { BookingRequest.kind }

    func decode(_ entry: StreamEntry) throws(UnprocessableMessage) -> BookingRequest {
        guard let request = BookingRequest(payload: entry.payload), request.isComplete
        else { throw UnprocessableMessage("undecodable \(entry.kind) payload") }
        return request
    }

    func handle(_ request: BookingRequest, entry: StreamEntry, context: HandlerContext) async throws -> HandledMessage {
        let result = try await context.withConnection("the transaction") { connection in
            try await transaction.run(request, key: entry.key, stream: entry.stream, entryID: entry.id, on: connection)
        }
        return HandledMessage(
            outcome: result.outcome.rawValue, duplicate: result.duplicate,
            published: request.requestID.map { requestID in
                PublishedResult(
                    requestID: requestID,
                    body: Self.outcomeJSON(
                        requestID: requestID, status: result.outcome.rawValue, interviewID: result.interviewID),
                    keepExisting: result.outcome == .requestIDReused)
            })
    }

    /// Compiles `leasehold_book` and plans its statements on the connection
    /// (``BookingTransaction/warmUp(on:)``: a booking of a throwaway user and slot, rolled back).
    func warmUp(on connection: PostgresConnection) async throws {
        try await transaction.warmUp(on: connection)
    }

    /// `{"interview_id":…,"request_id":"…","status":"…"}`: `GET /v1/bookings/<request_id>`'s
    /// body (`interview_id` left out when there is none), keys sorted. Written out by hand, not
    /// with `JSONEncoder`: it is built once per message on the worker's hot path, where the
    /// encoder's reflection and boxing would cost many times this.
    static func outcomeJSON(requestID: String, status: String, interviewID: Int64?) -> [UInt8] {
        var json: [UInt8] = []
        json.reserveCapacity(48 + requestID.utf8.count + status.utf8.count)
        json += Array("{".utf8)
        if let interviewID { json += Array("\"interview_id\":\(interviewID),".utf8) }
        json += Array("\"request_id\":".utf8)
        appendJSONString(requestID, to: &json)
        json += Array(",\"status\":".utf8)
        appendJSONString(status, to: &json)
        json.append(UInt8(ascii: "}"))
        return json
    }

    /// `text` as a JSON string (RFC 8259), escaped as `JSONEncoder` does: quotes and backslashes,
    /// `\b \t \n \f \r` by name, the other control characters as `\u00XX`, everything else as UTF-8.
    static func appendJSONString(_ text: String, to json: inout [UInt8]) {
        json.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                json += [UInt8(ascii: "\\"), byte]
            case 0x08: json += Array("\\b".utf8)
            case 0x09: json += Array("\\t".utf8)
            case 0x0A: json += Array("\\n".utf8)
            case 0x0C: json += Array("\\f".utf8)
            case 0x0D: json += Array("\\r".utf8)
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                json += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            default:
                json.append(byte)
            }
        }
        json.append(UInt8(ascii: "\""))
    }
}
