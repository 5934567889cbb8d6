import LeaseholdQueue
import LeaseholdRedis

/// What an `--ingress-only` run leaves in Redis, and its removal.
///
/// Ingress XADDs each accepted request to the input's stream (`<prefix>stream:bookings` or
/// `…:telegram`) with an ID it picks (`*`), so the load tester never learns the IDs. Stream IDs
/// only grow, though: the stream's last ID before the run bounds the search, and every entry
/// after it whose `key` field is one of this run's message keys (``RequestPlan/index(ofKey:)``)
/// is the run's — entries other producers added meanwhile are left alone. They are acknowledged
/// in the workers' group (in case a worker read them after all: no dangling pending entry) and
/// deleted with XDEL. For `--input api` ingress also wrote `<prefix>result:<request_id>` (the
/// pending marker) and `<prefix>digest:<request_id>` per accepted request; those are deleted by
/// name for every request sent.
struct RunBacklog: Sendable {
    let redis: RedisClient
    let keys: RedisKeys
    let plan: RequestPlan

    /// What a clean-up removed.
    struct Removal: Sendable {
        var streamEntries: Int
        var keys: Int
    }

    var stream: String { keys.stream(plan.input == .api ? "bookings" : "telegram") }

    /// The stream's last entry ID right now (`0-0` when it is empty or missing): every entry the
    /// run adds comes after it.
    func lastEntryID() async throws -> String {
        let reply = try await redis.send("XREVRANGE", stream, "+", "-", "COUNT", 1)
        return reply.array?.first?.array?.first?.string ?? "0-0"
    }

    /// The IDs of this run's entries after `after`, read in pages of 1000.
    func entryIDs(after: String) async throws -> [String] {
        var ids: [String] = []
        var cursor = after
        while true {
            let page = try await redis.send("XRANGE", stream, "(" + cursor, "+", "COUNT", 1000).array ?? []
            for element in page {
                guard let pair = element.array, pair.count == 2, let id = pair[0].string else { continue }
                cursor = id
                if let key = pair[1].fieldMap?["key"]?.string, plan.index(ofKey: key) != nil { ids.append(id) }
            }
            if page.count < 1000 { return ids }
        }
    }

    /// Deletes the run's entries after `after` and, for the API, the result and digest keys of
    /// requests `0..<sent`.
    func remove(after: String, sent: Int) async throws -> Removal {
        var removal = Removal(streamEntries: 0, keys: 0)
        let ids = try await entryIDs(after: after)
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ ids[$0..<min($0 + 500, ids.count)] }) {
            let replies = try await redis.pipeline([
                RedisCommand(["XACK", stream, RedisKeys.consumerGroup] + Array(chunk)),
                RedisCommand(["XDEL", stream] + Array(chunk)),
            ])
            // XACK answers NOGROUP when no worker ever created the group; nothing is pending then.
            if case .error(let error) = replies[0], error.code != .noGroup { throw error }
            if case .error(let error) = replies[1] { throw error }
            removal.streamEntries += Int(replies[1].int ?? 0)
        }
        guard plan.input == .api, sent > 0 else { return removal }
        for start in stride(from: 0, to: sent, by: 250) {
            var names: [any RedisArgument] = ["DEL"]
            for index in start..<min(start + 250, sent) {
                let requestID = "lt-\(plan.run)-\(index)"
                names += [keys.result(requestID), keys.requestDigest(requestID)]
            }
            removal.keys += Int(try await redis.send(RedisCommand(names)).int ?? 0)
        }
        return removal
    }

    /// This run's entries still on the stream after `after`, and its result or digest keys still
    /// present (EXISTS counts them), for requests `0..<sent`.
    func remaining(after: String, sent: Int) async throws -> (streamEntries: Int, keys: Int) {
        let entries = try await entryIDs(after: after).count
        guard plan.input == .api, sent > 0 else { return (entries, 0) }
        var present = 0
        for start in stride(from: 0, to: sent, by: 250) {
            var names: [any RedisArgument] = ["EXISTS"]
            for index in start..<min(start + 250, sent) {
                let requestID = "lt-\(plan.run)-\(index)"
                names += [keys.result(requestID), keys.requestDigest(requestID)]
            }
            present += Int(try await redis.send(RedisCommand(names)).int ?? 0)
        }
        return (entries, present)
    }
}
