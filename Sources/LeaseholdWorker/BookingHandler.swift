import Foundation
import LeaseholdDomain
import LeaseholdQueue

/// `booking`: a booking, cancellation or reschedule (a Telegram callback or `POST /v1/bookings`),
/// applied by ``BookingTransaction`` — the function `leasehold_book`, one statement in autocommit,
/// so one round trip.
struct BookingHandler: MessageHandler {
    let transaction: BookingTransaction

    var kind: String { BookingRequest.kind }

    func decode(_ entry: StreamEntry) throws(UnprocessableMessage) -> BookingRequest {
        guard let request = try? JSONDecoder().decode(BookingRequest.self, from: Data(entry.payload)),
            request.isComplete
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

    /// `{"interview_id":…,"request_id":"…","status":"…"}`: `GET /v1/bookings/<request_id>`'s
    /// body (`interview_id` left out when there is none).
    static func outcomeJSON(requestID: String, status: String, interviewID: Int64?) -> [UInt8] {
        struct Outcome: Encodable {
            var requestID: String
            var status: String
            var interviewID: Int64?

            enum CodingKeys: String, CodingKey {
                case requestID = "request_id"
                case status
                case interviewID = "interview_id"
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = (try? encoder.encode(Outcome(requestID: requestID, status: status, interviewID: interviewID)))
        return data.map(Array.init) ?? Array(#"{"status":"\#(status)"}"#.utf8)
    }
}
