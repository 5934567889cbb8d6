import LeaseholdLoadTest
import Testing

extension UnitTests {
    /// How a sender (here `leasehold loadtest`) reads ingress's answers, directly or through a reverse
    /// proxy: which leave the request's fate open (retry with the same key; it may be processed).
    @Suite("answers whose outcome is unknown")
    struct AnswerOutcomeTests {
        @Test("a 503 is unknown only when ingress says so; a proxy's 502 and 504 always are")
        func unknownAnswers() {
            #expect(LoadTest.outcomeUnknown(status: 503, outcome: "unknown"))
            #expect(!LoadTest.outcomeUnknown(status: 503, outcome: "refused"))
            #expect(!LoadTest.outcomeUnknown(status: 503, outcome: nil))
            // nginx answers these itself when the replica died or stalled with the request.
            #expect(LoadTest.outcomeUnknown(status: 502, outcome: nil))
            #expect(LoadTest.outcomeUnknown(status: 504, outcome: nil))
            for status in [200, 202, 400, 401, 403, 409, 413, 429, 500] {
                #expect(!LoadTest.outcomeUnknown(status: status, outcome: nil), "\(status)")
            }
        }
    }
}
