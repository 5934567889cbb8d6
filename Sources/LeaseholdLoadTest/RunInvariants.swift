/// The invariants a finished run must satisfy, checked on what was read from PostgreSQL and what
/// the clients recorded. A plain value with no I/O, so every rule is unit-tested on made-up runs;
/// ``LoadTest`` reads the inputs (``LoadTest/invariantInputs(plan:snapshot:stats:duplicatesBefore:postgres:)``)
/// and reports the result.
struct RunInvariants: Sendable {
    /// One inbox row of the run.
    struct InboxRow: Sendable {
        var index: Int
        var key: String
        var outcome: String
        var endToEndMicros: Int64?
        /// COMMIT time, seconds since 1970 (PostgreSQL's clock).
        var committedAt: Double
    }

    /// What the clients know about the requests of the run.
    struct Sent: Sendable {
        /// Every index below this was sent, or dropped by the generator for being late.
        var handedOut: Int
        /// Requests answered with the accepted status.
        var accepted: Int
        /// Requests whose answer was lost or ambiguous (they may have reached the stream).
        var unanswered: Set<Int>
        var rejected: Set<Int>
        /// Requests the generator did not send because it was already too late for them.
        var dropped: Set<Int>

        func isAccepted(_ index: Int) -> Bool {
            index < handedOut && !unanswered.contains(index) && !rejected.contains(index) && !dropped.contains(index)
        }
    }

    /// The outcomes a request ends with; any other is a stage on the way.
    static let finalOutcomes: Set<String> = ["booked", "slot_taken", "already_booked", "unknown_slot", "rejected"]

    var plan: RequestPlan
    /// Every inbox row of the run, by request index (one snapshot).
    var snapshot: [Int: InboxRow]
    var sent: Sent
    /// Slots anywhere in the database (not only the run's) with more than one active interview.
    var doubleBookedSlots: Int
    /// The message keys of the active interviews of the run's slots, by slot ID.
    var bookedKeys: [Int64: [String]]
    /// "duplicate key value" lines in the PostgreSQL log before and after the run; `nil` when the
    /// log was not given.
    var duplicateKeyErrors: (before: Int, after: Int)?

    func check() -> [LoadTestReport.Invariant] {
        [
            noDoubleBooking(), slotsAgreeWithAnswers(), inboxCountMatches(), oneFinalOutcomeEach(),
            noDuplicateKeyErrors(),
        ]
    }

    /// 1. No double booking anywhere in the database.
    func noDoubleBooking() -> LoadTestReport.Invariant {
        .init(
            name: "no slot has two active interviews", passed: doubleBookedSlots == 0,
            detail: "\(doubleBookedSlots) slots with more than one active interview")
    }

    /// 2. Each slot's bookings agree with what its requests were told.
    func slotsAgreeWithAnswers() -> LoadTestReport.Invariant {
        // Per slot (by position), the outcomes of its requests that have one.
        var slotOutcomes: [Int: [(key: String, outcome: String)]] = [:]
        for row in snapshot.values {
            slotOutcomes[plan.slotPosition(row.index), default: []].append((row.key, row.outcome))
        }
        var disagreements: [String] = []
        var booked = 0
        var leftFree = 0
        for (position, answers) in slotOutcomes.sorted(by: { $0.key < $1.key }) {
            let slot = plan.slotIDs[position]
            let inDatabase = Set(bookedKeys[slot] ?? [])
            let told = Set(answers.filter { $0.outcome == "booked" }.map(\.key))
            if !inDatabase.isEmpty { booked += 1 }
            // A booking by a request whose answer was lost is legitimate (it reached the stream).
            let lost = inDatabase.filter { key in plan.index(ofKey: key).map { sent.unanswered.contains($0) } ?? false }
            if told.count > 1 {
                disagreements.append("slot \(slot): \(told.count) requests told booked")
            } else if inDatabase.count > 1 {
                disagreements.append("slot \(slot): \(inDatabase.count) active interviews")
            } else if told != inDatabase && !(told.isEmpty && inDatabase == lost) {
                disagreements.append(
                    "slot \(slot): booked by \(inDatabase.sorted()) but \(told.sorted()) told booked")
            } else if inDatabase.isEmpty {
                // Free is right only when nobody could take it: every requester already had a booking.
                if answers.allSatisfy({ $0.outcome == "already_booked" }) {
                    leftFree += 1
                } else {
                    let seen = Set(answers.map(\.outcome)).sorted().joined(separator: ", ")
                    disagreements.append("slot \(slot): free, yet its requests were told \(seen)")
                }
            }
        }
        let freeNote = leftFree == 0 ? "" : "; \(leftFree) left free (every requester already had a booking)"
        return .init(
            name: "each contended slot booked once, by the request told booked", passed: disagreements.isEmpty,
            detail: disagreements.isEmpty
                ? "\(booked) of \(slotOutcomes.count) requested slots booked\(freeNote)"
                : "\(disagreements.count) slots disagree, e.g. " + disagreements.prefix(3).joined(separator: "; "))
    }

    /// 3. Inbox rows = accepted requests (plus those whose answer was lost, or was an ambiguous
    /// 503, but that reached the stream: at most one row each, the primary key sees to that).
    func inboxCountMatches() -> LoadTestReport.Invariant {
        let processedUnanswered = snapshot.keys.filter { sent.unanswered.contains($0) }.count
        let unexpected = snapshot.keys.filter { !sent.isAccepted($0) && !sent.unanswered.contains($0) }.count
        let rowsForAccepted = snapshot.count - processedUnanswered
        var detail = "\(rowsForAccepted) inbox rows for \(sent.accepted) accepted requests"
        if processedUnanswered > 0 {
            detail +=
                ", plus \(processedUnanswered) for requests whose answer was lost or ambiguous but which reached the stream"
        }
        if unexpected > 0 { detail += "; \(unexpected) rows for requests that were refused (non-2xx)" }
        return .init(
            name: "inbox count equals accepted requests", passed: rowsForAccepted == sent.accepted && unexpected == 0,
            detail: detail)
    }

    /// 4. Every accepted request: one inbox row (primary key) with a final outcome.
    func oneFinalOutcomeEach() -> LoadTestReport.Invariant {
        var missing = 0
        var notFinal = 0
        for index in 0..<sent.handedOut where sent.isAccepted(index) {
            guard let row = snapshot[index] else {
                missing += 1
                continue
            }
            if !Self.finalOutcomes.contains(row.outcome) { notFinal += 1 }
        }
        return .init(
            name: "every accepted request has exactly one outcome", passed: missing == 0 && notFinal == 0,
            detail: missing == 0 && notFinal == 0
                ? "one inbox row (primary key) with a final outcome per accepted request"
                : "\(missing) accepted requests without an outcome, \(notFinal) with a non-final one")
    }

    /// 5. The unique index was never what stopped a double booking.
    func noDuplicateKeyErrors() -> LoadTestReport.Invariant {
        guard let (before, after) = duplicateKeyErrors else {
            return .init(
                name: "zero duplicate key errors in the PostgreSQL log", passed: true,
                detail: "not checked: pass --postgres-log (or set POSTGRES_LOG)", checked: false)
        }
        return .init(
            name: "zero duplicate key errors in the PostgreSQL log", passed: after == before,
            detail: "\(after - before) new duplicate key errors")
    }
}
