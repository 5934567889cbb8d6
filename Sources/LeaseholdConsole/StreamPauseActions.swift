import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis

/// Pausing and resuming sources together with their audit record: the one path that
/// `leasehold streams pause|resume` and the console's overview both take, so a pause reads the
/// same in `console_actions` whoever made it.
public struct StreamPauseActions: Sendable {
    public let keys: RedisKeys

    public init(keys: RedisKeys) {
        self.keys = keys
    }

    /// Pauses every stream of `sources` (``StreamPauses/pause(source:_:via:)``) and records who and
    /// why, scope `<sources>: <reason>`. Returns the action's id.
    @discardableResult
    public func pause(
        _ sources: [String], by actor: String, reason: String, at time: Date = Date(), redis: RedisClient,
        postgres: PostgresClient
    ) async throws -> Int64 {
        let pause = StreamPauses.Pause(by: actor, at: time, reason: reason)
        for source in sources { try await StreamPauses(keys: keys).pause(source: source, pause, via: redis) }
        return try await ConsoleAuditLog().record(
            actor: actor, action: "pause", scope: "\(sources.joined(separator: ", ")): \(reason)", deadLetterIDs: [],
            postgres: postgres)
    }

    /// Resumes every stream of `sources` and, when any of them was paused, records who resumed
    /// which, scope `<resumed sources>`. Returns the sources that were paused (empty: nothing was,
    /// and nothing is recorded) and the action's id.
    public func resume(
        _ sources: [String], by actor: String, redis: RedisClient, postgres: PostgresClient
    ) async throws -> (resumed: [String], actionID: Int64?) {
        var resumed: [String] = []
        for source in sources where try await StreamPauses(keys: keys).resume(source: source, via: redis) {
            resumed.append(source)
        }
        guard !resumed.isEmpty else { return ([], nil) }
        let id = try await ConsoleAuditLog().record(
            actor: actor, action: "resume", scope: resumed.joined(separator: ", "), deadLetterIDs: [],
            postgres: postgres)
        return (resumed, id)
    }
}
