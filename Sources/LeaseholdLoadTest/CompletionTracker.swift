import LeaseholdPostgres
import NIOConcurrencyHelpers

/// Which accepted requests already have a committed outcome, found by looking their keys up in
/// the inbox (primary key lookups, in batches, oldest first).
///
/// The inbox is the one place every input shape's outcome is recorded: an API request's outcome
/// is also published to Redis for `GET /v1/bookings/<id>`, but a Telegram update's is not (its
/// answer is the bot's reply in `outbox`), so the load tester reads PostgreSQL for both. An inbox
/// row becomes visible at COMMIT, the moment the outcome exists.
final class CompletionTracker: Sendable {
    private struct State {
        /// Accepted, no inbox row seen yet; in acceptance order.
        var outstanding: [Int] = []
        var completed = 0
    }

    private let state = NIOLockedValueBox(State())
    let plan: RequestPlan
    /// Keys per query.
    static let batchSize = 1000

    init(plan: RequestPlan) {
        self.plan = plan
    }

    func accepted(_ index: Int) {
        state.withLockedValue { $0.outstanding.append(index) }
    }

    var completed: Int { state.withLockedValue { $0.completed } }
    var outstanding: Int { state.withLockedValue { $0.outstanding.count } }

    /// Looks up to `limit` of the oldest outstanding requests in the inbox, a batch at a time,
    /// and marks those found as completed. Outcomes arrive roughly in acceptance order, so once a
    /// batch is less than half complete the younger ones are left for the next poll: the cost
    /// follows the completions, not the backlog (the load tester must not load the database it
    /// measures).
    func poll(limit: Int, postgres: PostgresClient) async throws {
        let candidates = state.withLockedValue { Array($0.outstanding.prefix(limit)) }
        var found = Set<Int>()
        var start = 0
        while start < candidates.count {
            let batch = candidates[start..<min(start + Self.batchSize, candidates.count)]
            start += Self.batchSize
            // Keys never contain a comma (see RequestPlan), so one text parameter carries the batch.
            let keys = batch.map(plan.messageKey).joined(separator: ",")
            var foundInBatch = 0
            for row in try await postgres.query(
                "SELECT message_key FROM inbox WHERE message_key = ANY(string_to_array(\(keys), ','))")
            {
                if let index = plan.index(ofKey: try row.decode(String.self, at: 0)) {
                    found.insert(index)
                    foundInBatch += 1
                }
            }
            if foundInBatch * 2 < batch.count { break }
        }
        guard !found.isEmpty else { return }
        state.withLockedValue { state in
            let before = state.outstanding.count
            state.outstanding.removeAll { found.contains($0) }
            state.completed += before - state.outstanding.count
        }
    }
}
