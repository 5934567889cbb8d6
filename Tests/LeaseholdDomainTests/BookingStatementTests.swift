import LeaseholdPostgres
import LeaseholdWire
import Testing

@testable import LeaseholdDomain

extension UnitTests {
    /// The booking statement is built from a fixed text and a cached replies parameter: it must be
    /// exactly the query the interpolation builds, text and parameters.
    @Suite("Booking statement")
    struct BookingStatementTests {
        /// Every action with and without each optional id, extreme ids, and keys that need escaping.
        static let requests: [BookingRequest] = {
            var requests: [BookingRequest] = []
            for action in [BookingRequest.Action.book, .cancel, .reschedule] {
                for (userID, id) in [(Int64(1), Int64(2)), (.max, .min), (-1, 0)] {
                    requests.append(BookingRequest(action: action, userID: userID, slotID: id))
                    requests.append(BookingRequest(action: action, userID: userID, interviewID: id, chatID: id))
                    requests.append(
                        BookingRequest(
                            action: action, userID: userID, slotID: id, interviewID: id, chatID: id, requestID: "r-1",
                            callbackQueryID: "77"))
                }
            }
            for text in ["", "with \"quotes\"", "back\\slash", "tab\tnew\nline", "\u{0}\u{1f}", "ключ-🔑"] {
                requests.append(BookingRequest(action: .book, userID: 3, slotID: 4, requestID: text))
                requests.append(BookingRequest(action: .cancel, userID: 3, interviewID: 4, callbackQueryID: text))
            }
            return requests
        }()

        @Test("the booking statement is the interpolated one", arguments: requests)
        func statementMatchesTheInterpolation(_ request: BookingRequest) {
            for transaction in [
                BookingTransaction(),
                BookingTransaction(rules: BookingRules(onePerUser: false, createTelegramUsers: false)),
            ] {
                for (stream, entryID) in [(String?.none, String?.none), ("lh:stream:bookings", "1-0")] {
                    let built = transaction.statement(request, key: "api:k", stream: stream, entryID: entryID)
                    let reference = transaction.interpolatedStatement(
                        request, key: "api:k", stream: stream, entryID: entryID)
                    #expect(built.sql == reference.sql)
                    #expect(built.binds == reference.binds)
                }
            }
        }
    }
}
