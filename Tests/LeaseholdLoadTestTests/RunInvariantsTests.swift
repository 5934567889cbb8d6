import Testing

@testable import LeaseholdLoadTest

extension UnitTests {
    /// The load test's verdict rules on made-up runs, without servers: each rule passes on a run that
    /// keeps it and fails, with a detail that says why, on one that breaks it.
    @Suite("load test invariants")
    struct RunInvariantsTests {
        /// 3 slots (IDs 101–103), 4 API requests per slot, 12 users: requests 0–3 go to slot 101,
        /// 4–7 to 102, 8–11 to 103.
        static let plan = RequestPlan(
            run: 42, input: .api, slotIDs: [101, 102, 103], users: 1...12, requestsPerSlot: 4, apiToken: "t",
            telegramSecret: "s")

        /// A clean run: every request accepted and answered, the first request of each slot booked it,
        /// the others were told `slot_taken`.
        static func cleanRun() -> RunInvariants {
            let plan = Self.plan
            var snapshot: [Int: RunInvariants.InboxRow] = [:]
            var booked: [Int64: [String]] = [:]
            for index in 0..<12 {
                let first = index % 4 == 0
                snapshot[index] = .init(
                    index: index, key: plan.messageKey(index), outcome: first ? "booked" : "slot_taken",
                    endToEndMicros: 1_000, committedAt: 0)
                if first { booked[plan.slot(index), default: []].append(plan.messageKey(index)) }
            }
            return RunInvariants(
                plan: plan, snapshot: snapshot,
                sent: .init(handedOut: 12, accepted: 12, unanswered: [], rejected: [], dropped: []),
                doubleBookedSlots: 0, bookedKeys: booked, duplicateKeyErrors: (before: 3, after: 3))
        }

        static func failed(_ run: RunInvariants) -> [String] {
            run.check().filter { !$0.passed }.map(\.name)
        }

        @Test func aCleanRunPassesEveryRule() {
            let results = Self.cleanRun().check()
            #expect(results.count == 5)
            #expect(results.allSatisfy { $0.passed && $0.checked }, "\(results)")
            #expect(results[1].detail == "3 of 3 requested slots booked")
        }

        @Test func anyDoubleBookedSlotInTheDatabaseFails() {
            var run = Self.cleanRun()
            run.doubleBookedSlots = 1
            #expect(Self.failed(run) == ["no slot has two active interviews"])
        }

        @Test func twoRequestsToldBookedForOneSlotFails() {
            var run = Self.cleanRun()
            run.snapshot[1]?.outcome = "booked"
            #expect(Self.failed(run) == ["each contended slot booked once, by the request told booked"])
            #expect(run.slotsAgreeWithAnswers().detail.contains("slot 101: 2 requests told booked"))
        }

        @Test func aBookingByAnotherRequestThanTheOneToldBookedFails() {
            var run = Self.cleanRun()
            run.bookedKeys[102] = [Self.plan.messageKey(5)]
            let invariant = run.slotsAgreeWithAnswers()
            #expect(!invariant.passed)
            #expect(
                invariant.detail.contains("slot 102: booked by [\"api:lt-42-5\"] but [\"api:lt-42-4\"] told booked"))
        }

        @Test func aBookingByARequestWhoseAnswerWasLostIsLegitimate() {
            var run = Self.cleanRun()
            // Request 4 booked slot 102 but its answer was lost; the others were told slot_taken.
            run.snapshot[4]?.outcome = "booked"
            run.sent.unanswered = [4]
            run.sent.accepted = 11
            // Told: nobody among the answered requests, since 4's answer never arrived.
            run.snapshot[4] = nil
            #expect(run.slotsAgreeWithAnswers().passed, "\(run.slotsAgreeWithAnswers().detail)")
            #expect(Self.failed(run) == [])
        }

        @Test func aFreeSlotIsRightOnlyWhenEveryRequesterAlreadyHadABooking() {
            var run = Self.cleanRun()
            run.bookedKeys[103] = nil
            for index in 8..<12 { run.snapshot[index]?.outcome = "already_booked" }
            #expect(run.slotsAgreeWithAnswers().passed)
            #expect(run.slotsAgreeWithAnswers().detail.hasSuffix("1 left free (every requester already had a booking)"))
            run.snapshot[9]?.outcome = "slot_taken"
            let invariant = run.slotsAgreeWithAnswers()
            #expect(!invariant.passed)
            #expect(invariant.detail.contains("slot 103: free, yet its requests were told already_booked, slot_taken"))
        }

        @Test func anAcceptedRequestWithoutAnOutcomeFails() {
            var run = Self.cleanRun()
            run.snapshot[6] = nil
            #expect(
                Self.failed(run) == [
                    "inbox count equals accepted requests", "every accepted request has exactly one outcome",
                ])
            #expect(
                run.oneFinalOutcomeEach().detail == "1 accepted requests without an outcome, 0 with a non-final one")
        }

        @Test func anOutcomeThatIsNotFinalFails() {
            var run = Self.cleanRun()
            run.snapshot[7]?.outcome = "processing"
            #expect(Self.failed(run) == ["every accepted request has exactly one outcome"])
        }

        @Test func aRowForARefusedRequestFails() {
            var run = Self.cleanRun()
            run.sent.rejected = [3]
            run.sent.accepted = 11
            let invariant = run.inboxCountMatches()
            #expect(!invariant.passed)
            #expect(invariant.detail.hasSuffix("; 1 rows for requests that were refused (non-2xx)"))
        }

        @Test func aProcessedRequestWhoseAnswerWasLostCountsBesideTheAccepted() {
            var run = Self.cleanRun()
            run.sent.unanswered = [2]
            run.sent.accepted = 11
            let invariant = run.inboxCountMatches()
            #expect(invariant.passed, "\(invariant.detail)")
            #expect(invariant.detail.hasPrefix("11 inbox rows for 11 accepted requests, plus 1 for requests"))
        }

        @Test func newDuplicateKeyErrorsFailAndAMissingLogIsNotChecked() {
            var run = Self.cleanRun()
            run.duplicateKeyErrors = (before: 3, after: 5)
            #expect(Self.failed(run) == ["zero duplicate key errors in the PostgreSQL log"])
            #expect(run.noDuplicateKeyErrors().detail == "2 new duplicate key errors")
            run.duplicateKeyErrors = nil
            #expect(run.noDuplicateKeyErrors().passed)
            #expect(!run.noDuplicateKeyErrors().checked)
        }
    }
}
