import LeaseholdQueue
import LeaseholdRedis

/// What an `--ingress-only` run leaves in Redis, and its removal.
///
/// Ingress XADDs each accepted request to the input's stream (`<prefix>stream:bookings` or
/// `…:telegram`; one of each per shard in the sharded layout) with an ID it picks (`*`), so the
/// load tester never learns the IDs. Stream IDs only grow, though: each stream's last ID before
/// the run bounds the search, and every entry
/// after it whose `key` field is one of this run's message keys (``RequestPlan/index(ofKey:)``)
/// is the run's — entries other producers added meanwhile are left alone. They are acknowledged
/// in the workers' group (in case a worker read them after all: no dangling pending entry) and
/// deleted with XDEL. For `--input api` ingress also wrote the result key (the pending marker)
/// and the digest key of every accepted request (``RedisKeys/result(_:)``,
/// ``RedisKeys/requestDigest(_:)``); those are deleted by name for every request sent.
struct RunBacklog: Sendable {
    let redis: RedisClient
    let keys: RedisKeys
    let plan: RequestPlan

    /// What a clean-up removed.
    struct Removal: Sendable {
        var streamEntries: Int
        var keys: Int
    }

    /// The input's streams: one on one node, one per shard in the sharded layout.
    var streams: [String] { keys.streams(plan.input == .api ? "bookings" : "telegram") }

    /// Where each stream ends, by stream.
    typealias Marks = [String: String]

    /// Each stream's last entry ID right now (`0-0` when it is empty or missing): every entry the
    /// run adds comes after it.
    func lastEntryIDs() async throws -> Marks {
        var marks: Marks = [:]
        for stream in streams {
            let reply = try await redis.send("XREVRANGE", stream, "+", "-", "COUNT", 1)
            marks[stream] = reply.array?.first?.array?.first?.string ?? "0-0"
        }
        return marks
    }

    /// The IDs of this run's entries on `stream` after `after`, read in pages of 1000.
    func entryIDs(on stream: String, after: String) async throws -> [String] {
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
    func remove(after marks: Marks, sent: Int) async throws -> Removal {
        var removal = Removal(streamEntries: 0, keys: 0)
        for stream in streams {
            try await remove(on: stream, after: marks[stream] ?? "0-0", into: &removal)
        }
        guard plan.input == .api, sent > 0 else { return removal }
        for start in stride(from: 0, to: sent, by: 250) {
            let requestIDs = (start..<min(start + 250, sent)).map { "lt-\(plan.run)-\($0)" }
            removal.keys += try await count("DEL", requestIDs)
        }
        return removal
    }

    private func remove(on stream: String, after: String, into removal: inout Removal) async throws {
        let ids = try await entryIDs(on: stream, after: after)
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
    }

    /// `DEL` or `EXISTS` of the result and digest keys of `requestIDs`: one command per stream
    /// they live beside (one on one node), the counts added up.
    private func count(_ command: String, _ requestIDs: [String]) async throws -> Int {
        var byStream: [String: [any RedisArgument]] = [:]
        for requestID in requestIDs {
            byStream[keys.bookingStream(requestID: requestID), default: []] += [
                keys.result(requestID), keys.requestDigest(requestID),
            ]
        }
        var total = 0
        for names in byStream.values {
            total += Int(try await redis.send(RedisCommand([command] + names)).int ?? 0)
        }
        return total
    }

    /// This run's entries still on the stream after `after`, and its result or digest keys still
    /// present (EXISTS counts them), for requests `0..<sent`.
    func remaining(after marks: Marks, sent: Int) async throws -> (streamEntries: Int, keys: Int) {
        var entries = 0
        for stream in streams { entries += try await entryIDs(on: stream, after: marks[stream] ?? "0-0").count }
        guard plan.input == .api, sent > 0 else { return (entries, 0) }
        var present = 0
        for start in stride(from: 0, to: sent, by: 250) {
            present += try await count("EXISTS", (start..<min(start + 250, sent)).map { "lt-\(plan.run)-\($0)" })
        }
        return (entries, present)
    }
}
