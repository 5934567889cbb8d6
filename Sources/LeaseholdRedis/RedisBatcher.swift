import NIOConcurrencyHelpers

/// Lets concurrent callers share Redis round trips: commands sent while others are on the wire
/// wait and go together, in one pipeline, on the next round trip.
///
/// At most `flushers` pipelines are in flight at once. A caller that finds one free sends its own
/// command at once, together with every command waiting then (up to `maxBatch`); a caller that
/// finds them all busy waits in line. When a pipeline's replies arrive, its sender hands its turn
/// to the first caller still waiting, who sends everything that piled up meanwhile. So an idle
/// system answers in one round trip, as before, and a busy one sends one write and reads one
/// batch of replies per round trip instead of one per command: the cost per command falls as the
/// load rises (group commit, for Redis). Nothing runs in the background: every pipeline is sent
/// by one of the callers whose commands it carries.
///
/// Replies are matched to callers by position (Redis answers a pipeline in order). An error reply
/// is thrown to its own caller only; an I/O error is thrown to every caller of that pipeline,
/// whose commands' fate on the server is then unknown, exactly as for a single command.
public final class RedisBatcher: Sendable {
    public let client: RedisClient
    /// The most commands one pipeline carries.
    public let maxBatch: Int
    private let flushers: Int
    private let state = NIOLockedValueBox(State())

    private enum Turn: Sendable {
        case reply(RedisValue)
        /// Send a pipeline: your command and what waits.
        case lead
    }

    private struct Waiter: Sendable {
        let command: RedisCommand
        let continuation: CheckedContinuation<Turn, any Error>
    }

    /// Commands and pipelines sent so far: `commands / pipelines` is the mean batch.
    public struct Statistics: Sendable, Equatable {
        public var commands = 0
        public var pipelines = 0
    }

    /// What this batcher has sent.
    public var statistics: Statistics { state.withLockedValue { $0.statistics } }

    private struct State {
        var statistics = Statistics()
        var sending = 0
        var waiting: [Waiter] = []
        var head = 0
        var count: Int { waiting.count - head }

        mutating func take(_ limit: Int) -> ArraySlice<Waiter> {
            let end = min(waiting.count, head + limit)
            let batch = waiting[head..<end]
            head = end
            if head == waiting.count {
                waiting.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1_024, head * 2 >= waiting.count {
                // Under a load that never lets the line empty, drop the served prefix now and then.
                waiting.removeFirst(head)
                head = 0
            }
            return batch
        }
    }

    /// - Parameters:
    ///   - client: where pipelines go; give it at least `flushers` connections.
    ///   - flushers: pipelines in flight at once (default: the client's size).
    ///   - maxBatch: the most commands in one pipeline.
    public init(client: RedisClient, flushers: Int? = nil, maxBatch: Int = 256) {
        precondition(maxBatch >= 1)
        self.client = client
        self.flushers = max(1, flushers ?? client.size)
        self.maxBatch = maxBatch
    }

    /// Sends `command` in the next shared pipeline and returns its reply.
    /// - Throws: ``RedisError``: the command's error reply, or the pipeline's I/O error.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RedisValue {
        let turn = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Turn, any Error>) in
            let lead = state.withLockedValue { state -> Bool in
                if state.sending < flushers {
                    state.sending += 1
                    return true
                }
                state.waiting.append(Waiter(command: command, continuation: continuation))
                return false
            }
            if lead { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .reply(let value): return try Self.unwrap(value)
        case .lead: return try Self.unwrap(try await sendPipeline(leading: command))
        }
    }

    /// Runs `script` (EVALSHA) in a shared pipeline; loads it first, alone, when the server does
    /// not have it yet (first use, or after a restart or `SCRIPT FLUSH`).
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        guard let sha = script.sha else {
            return try await client.evaluate(script, keys: keys, arguments: arguments)
        }
        do {
            return try await send(RedisCommand(["EVALSHA", sha, keys.count] + keys + arguments))
        } catch let error as RedisError where error.code == .noScript {
            return try await client.evaluate(script, keys: keys, arguments: arguments)
        }
    }

    /// Sends `command` and whatever waits, resolves the waiters, and hands the turn on.
    private func sendPipeline(leading command: RedisCommand) async throws -> RedisValue {
        let batch = state.withLockedValue { state in
            let batch = state.take(maxBatch - 1)
            state.statistics.commands += batch.count + 1
            state.statistics.pipelines += 1
            return batch
        }
        let commands = [command] + batch.map(\.command)
        let replies: [RedisValue]
        do {
            // In a task of its own: the pipeline carries other callers' commands, so the sender's
            // cancellation must not cut it short (the others would get an error for a command
            // that may have run). It is awaited at once, so it never outlives this call.
            let client = self.client
            replies = try await Task { try await client.pipeline(commands) }.value
        } catch {
            for waiter in batch { waiter.continuation.resume(throwing: error) }
            handOff()
            throw error
        }
        for (waiter, reply) in zip(batch, replies.dropFirst()) {
            waiter.continuation.resume(returning: .reply(reply))
        }
        handOff()
        return replies[0]
    }

    /// Gives this pipeline slot to the first waiting caller, or frees it when nobody waits.
    private func handOff() {
        let next = state.withLockedValue { state -> Waiter? in
            guard state.count > 0 else {
                state.sending -= 1
                return nil
            }
            return state.take(1).first
        }
        next?.continuation.resume(returning: .lead)
    }

    private static func unwrap(_ value: RedisValue) throws -> RedisValue {
        if case .error(let error) = value { throw error }
        return value
    }
}
