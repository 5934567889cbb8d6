import Foundation
import Testing

@testable import LeaseholdWorker

extension UnitTests {
    /// The published outcome is written by hand on the worker's hot path: it must be the JSON the
    /// encoder would write, byte for byte, whatever the request ID holds.
    struct OutcomeJSONTests {
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

        static let requestIDs = [
            "r-1", "", "with \"quotes\"", "back\\slash", "tab\tnew\nline\r", "\u{0}\u{1}\u{1f}", "ключ-🔑", "a/b",
            "\u{7f}\u{2028}",
        ]

        @Test("the hand-written outcome equals JSONEncoder's, sorted keys", arguments: requestIDs)
        func matchesTheEncoder(_ requestID: String) throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for interviewID in [Int64?.none, 42, Int64.max] {
                let expected = try encoder.encode(
                    Outcome(requestID: requestID, status: "booked", interviewID: interviewID))
                let written = BookingHandler.outcomeJSON(
                    requestID: requestID, status: "booked", interviewID: interviewID)
                let decoded = try JSONSerialization.jsonObject(with: Data(written)) as? [String: Any]
                #expect(decoded?["request_id"] as? String == requestID)
                #expect(decoded?["interview_id"] as? Int64 == interviewID)
                #expect(String(decoding: written, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
            }
        }
    }
}
