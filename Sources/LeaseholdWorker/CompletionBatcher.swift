import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis

/// Gathers the completions asked for during one reactor turn into one script call.
///
/// Transactions finish in bursts: one wake-up of the reactor reads the COMMIT of several
/// connections, and each of their tasks then asks for its completion. Every request made before
/// the reactor next sleeps joins the same call (``Completion/complete(_:via:)``), so Redis runs one
/// script per burst instead of one per message, and the worker formats and parses one command.
///
/// The call runs in a task of its own, so cancelling one caller (a drain that timed out) never
/// fails the others' completions. Each caller gets its own entry's answer: an entry whose part of
/// the script failed, or (on a cluster) whose slot's call failed, throws that error; the others
/// return.
///
/// Reactor thread only (`client`'s reactor): the queue below is touched on that thread alone.
final class CompletionBatcher: @unchecked Sendable {
    let completion: Completion
    private let client: RedisClient
    private var queued: [(item: Completion.Item, waiter: CheckedContinuation<Void, any Error>)] = []
    /// Script calls made so far.
    private(set) var calls = 0
    /// Completions sent so far.
    private(set) var completed = 0

    init(completion: Completion, client: RedisClient) {
        self.completion = completion
        self.client = client
    }

    /// Completes `item` together with every other completion asked for in this reactor turn.
    func complete(_ item: Completion.Item) async throws {
        precondition(client.reactor.isCurrent, "CompletionBatcher off its reactor's thread")
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, any Error>) in
            queued.append((item, waiter))
            if queued.count == 1 {
                client.reactor.execute(afterPendingJobs: { [self] in send() })
            }
        }
    }

    private func send() {
        let batch = queued
        queued = []
        guard !batch.isEmpty else { return }
        calls += 1
        completed += batch.count
        Task(executorPreference: client.reactor) { [completion, client] in
            let errors = await completion.complete(batch.map(\.item), via: client)
            for (queued, error) in zip(batch, errors) {
                if let error {
                    queued.waiter.resume(throwing: error)
                } else {
                    queued.waiter.resume()
                }
            }
        }
    }
}
