import LeaseholdPostgres
import Testing

@testable import LeaseholdDomain

/// The booking statement is built from a fixed text and a cached replies parameter: it must be
/// exactly the query the interpolation builds, text and parameters.
@Suite("Booking statement")
struct BookingStatementTests {
    @Test("the booking statement is the interpolated one", arguments: BookingPayloadTests.requests)
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
