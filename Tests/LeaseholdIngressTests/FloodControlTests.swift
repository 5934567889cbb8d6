import Foundation
import LeaseholdCore
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

@testable import LeaseholdIngress

/// Flood control end to end: ingress in this process against the real Redis, a token bucket per
/// Telegram chat and per API client address. Over the limit, a Telegram callback is answered 200
/// with a "slow down" answer and an API request 429 with `Retry-After`; nothing is enqueued and
/// no marker written. Counts are bounded by the time measured around the requests
/// (`burst + rate × elapsed`), never by a deadline.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(2)))
struct FloodControlTests {
    /// The answer to a callback, as the webhook's response body carries it.
    struct CallbackAnswer: Decodable {
        var method: String
        var callbackQueryID: String
        var text: String

        enum CodingKeys: String, CodingKey {
            case method
            case callbackQueryID = "callback_query_id"
            case text
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return elapsed.seconds
    }

    /// `withIngress` with `configure`, then every key under the test's prefix deleted.
    static func withIngress(
        keys: RedisKeys? = nil, configure: @escaping (inout IngressConfiguration) -> Void,
        _ body: @escaping @Sendable (String, RedisKeys) async throws -> Void
    ) async throws {
        let keys = keys ?? RedisKeys(prefix: IntegrationEnvironment.uniqueName("lh_flood") + ":")
        var failure: (any Error)?
        do {
            try await IngressEnqueueTests.withIngress(keys: keys, configure: configure) { base, keys, _ in
                try await body(base, keys)
            }
        } catch {
            failure = error
        }
        let cleaner = try IntegrationEnvironment.redisClient(size: 1)
        await cleaner.deleteKeys(withPrefix: keys.prefix)
        cleaner.close()
        if let failure { throw failure }
    }

    /// The `key` field of every entry on `stream`.
    static func entryKeys(_ stream: String) async throws -> [String] {
        let redis = try IntegrationEnvironment.redisClient(size: 1)
        defer { redis.close() }
        let entries = try await redis.send("XRANGE", stream, "-", "+").array ?? []
        return entries.compactMap { entry in
            guard let fields = entry.array?.last?.array else { return nil }
            let pairs = stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0].string, fields[$0 + 1].string) }
            return pairs.first { $0.0 == "key" }?.1 ?? nil
        }
    }

    @Test("Telegram: over its chat's limit, 200 with a slow-down answer and nothing enqueued")
    func telegramOverTheLimit() async throws {
        try await Self.withIngress(configure: { $0.telegramFlood = FloodControl(rate: 1, burst: 3) }) { base, keys in
            try await BookingClient.with(baseURL: base) { http in
                let start = ContinuousClock.now
                var accepted: [Int64] = []
                var slowedDown = 0
                for updateID in Int64(1)...10 {
                    let answer = try await http.telegramCallback(
                        updateID: updateID, userID: 42, chatID: 42, data: "book:7")
                    #expect(answer.status == 200, "\(answer)")
                    let reply = try JSONDecoder().decode(CallbackAnswer.self, from: Data(answer.body.utf8))
                    #expect(reply.method == "answerCallbackQuery")
                    #expect(reply.callbackQueryID == "cb\(updateID)")
                    if reply.text == TelegramWebhookController.slowDown {
                        slowedDown += 1
                    } else {
                        accepted.append(updateID)
                    }
                }
                let seconds = Self.seconds(since: start)
                #expect(accepted.count >= 3, "the burst is let in")
                #expect(accepted.count <= 3 + Int(seconds + 0.01), "\(accepted.count) accepted in \(seconds) s")
                if seconds < 7 { #expect(slowedDown > 0) }
                #expect(
                    try await Self.entryKeys(keys.stream("telegram")) == accepted.map { "tg:\($0)" },
                    "exactly the accepted updates are on the stream")
            }
        }
    }

    @Test("API: over the client's limit, 429 with Retry-After, no entry, no pending marker")
    func apiOverTheLimit() async throws {
        try await Self.withIngress(configure: { $0.apiFlood = FloodControl(rate: 1, burst: 3) }) { base, keys in
            try await BookingClient.with(baseURL: base) { http in
                let run = IntegrationEnvironment.uniqueName("r")
                let start = ContinuousClock.now
                var accepted: [String] = []
                var throttled: [String] = []
                for index in 0..<10 {
                    let requestID = "\(run)-\(index)"
                    let answer = try await http.bookAnswer(requestID: requestID, userID: 5, slotID: 7)
                    switch answer.status {
                    case 202: accepted.append(requestID)
                    case 429:
                        throttled.append(requestID)
                        #expect(answer.retryAfter == "1", "a token at 1/s is at most a second away")
                    default: Issue.record("unexpected answer \(answer)")
                    }
                }
                let seconds = Self.seconds(since: start)
                #expect(accepted.count >= 3)
                #expect(accepted.count <= 3 + Int(seconds + 0.01), "\(accepted.count) accepted in \(seconds) s")
                if seconds < 7 { #expect(!throttled.isEmpty) }
                #expect(try await Self.entryKeys(keys.stream("bookings")) == accepted.map { "api:\($0)" })
                let redis = try IntegrationEnvironment.redisClient(size: 1)
                defer { redis.close() }
                for requestID in throttled {
                    #expect(try await redis.send("GET", keys.result(requestID)) == .null, "no marker: \(requestID)")
                    #expect(try await redis.send("GET", keys.requestDigest(requestID)) == .null)
                }
                for requestID in accepted {
                    #expect(try await redis.send("GET", keys.result(requestID)).string?.contains("pending") == true)
                }
            }
        }
    }

    @Test("API behind a trusted proxy: each X-Forwarded-For client has its own bucket")
    func apiClientsBehindAProxy() async throws {
        let proxy = try CIDRBlock("127.0.0.1/32")
        try await Self.withIngress(configure: {
            $0.apiFlood = FloodControl(rate: 1, burst: 3)
            $0.yookassaSources = SourceAddressPolicy(trustedProxies: [proxy])
        }) { base, _ in
            try await BookingClient.with(baseURL: base) { http in
                let run = IntegrationEnvironment.uniqueName("r")
                func book(_ index: Int, from client: String) async throws -> Int {
                    try await http.post(
                        "/v1/bookings",
                        headers: [
                            ("Authorization", "Bearer \(ProcessStack.apiToken)"), ("Content-Type", "application/json"),
                            ("X-Forwarded-For", client),
                        ],
                        body: #"{"request_id":"\#(run)-\#(client)-\#(index)","user_id":5,"slot_id":7}"#
                    ).status
                }
                let start = ContinuousClock.now
                var flooder: [Int] = []
                for index in 0..<10 { flooder.append(try await book(index, from: "203.0.113.1")) }
                let seconds = Self.seconds(since: start)
                try #require(
                    flooder.contains(429) || seconds >= 7, "the premise: the flooder was throttled: \(flooder)")
                // Another client behind the same proxy still has its whole burst.
                for index in 0..<3 { #expect(try await book(index, from: "203.0.113.2") == 202) }
            }
        }
    }

    @Test("two ingress replicas share a chat's bucket")
    func replicasShareTheBucket() async throws {
        let keys = RedisKeys(prefix: IntegrationEnvironment.uniqueName("lh_flood") + ":")
        let configure: @Sendable (inout IngressConfiguration) -> Void = {
            $0.telegramFlood = FloodControl(rate: 1, burst: 10)
        }
        try await Self.withIngress(keys: keys, configure: configure) { first, keys in
            try await IngressEnqueueTests.withIngress(keys: keys, configure: configure) { second, _, _ in
                try await BookingClient.with(baseURL: first) { one in
                    try await BookingClient.with(baseURL: second) { two in
                        let start = ContinuousClock.now
                        var accepted = 0
                        for updateID in Int64(1)...40 {
                            let http = updateID % 2 == 0 ? one : two
                            let answer = try await http.telegramCallback(
                                updateID: updateID, userID: 9, chatID: 9, data: "book:7")
                            #expect(answer.status == 200)
                            if !answer.body.contains(TelegramWebhookController.slowDown) { accepted += 1 }
                        }
                        let seconds = Self.seconds(since: start)
                        // A bucket per replica would let 20 in at once.
                        #expect(accepted >= 10)
                        #expect(accepted <= 10 + Int(seconds + 0.01), "\(accepted) accepted in \(seconds) s")
                        #expect(try await Self.entryKeys(keys.stream("telegram")).count == accepted)
                    }
                }
            }
        }
    }

    @Test("one chat flooding 200 callbacks beside 100 chats sending one each: all 100 get in, the flood is capped")
    func floodBesideWellBehavedChats() async throws {
        let (rate, burst) = (10, 20)
        try await Self.withIngress(configure: { $0.telegramFlood = FloodControl(rate: rate, burst: burst) }) {
            base, keys in
            // A connection per request: none waits for the pool (that wait counts against the
            // client's 5 s connect timeout, which a saturated machine exceeds).
            try await BookingClient.with(baseURL: base, connections: 300) { http in
                typealias Result = (chat: Int64, updateID: Int64, accepted: Bool, latency: Duration)
                let start = ContinuousClock.now
                let results = try await withThrowingTaskGroup(of: Result.self) { group -> [Result] in
                    // The flooder, chat 1, and chats 1001…1100 interleaved, all at once.
                    for index in 0..<300 {
                        let (chat, updateID): (Int64, Int64) =
                            index % 3 == 2 ? (Int64(1001 + index / 3), Int64(100_000 + index)) : (1, Int64(1 + index))
                        group.addTask {
                            let sent = ContinuousClock.now
                            let answer = try await http.telegramCallback(
                                updateID: updateID, userID: chat, chatID: chat, data: "book:7")
                            #expect(answer.status == 200, "\(answer)")
                            return (
                                chat, updateID, !answer.body.contains(TelegramWebhookController.slowDown),
                                ContinuousClock.now - sent
                            )
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let seconds = Self.seconds(since: start)
                let flood = results.filter { $0.chat == 1 }
                let others = results.filter { $0.chat != 1 }
                #expect(flood.count == 200 && others.count == 100)
                #expect(others.filter { !$0.accepted }.isEmpty, "every well-behaved chat gets in")
                let floodAccepted = flood.filter(\.accepted).count
                let cap = burst + Int(Double(rate) * seconds + 0.01)
                #expect(floodAccepted >= burst, "the flooder's burst is let in")
                #expect(floodAccepted <= cap, "\(floodAccepted) of the flood accepted in \(seconds) s")
                #expect(flood.count - floodAccepted >= 200 - cap, "the rest of the flood is refused")
                let onStream = try await Self.entryKeys(keys.stream("telegram"))
                #expect(onStream.count == 100 + floodAccepted)
                #expect(Set(onStream) == Set(results.filter(\.accepted).map { "tg:\($0.updateID)" }))
                // A figure for the record, not a bound: how the well-behaved chats fared meanwhile.
                let latencies = others.map(\.latency).sorted()
                print(
                    "flood control: \(floodAccepted)/200 of the flood and 100/100 others accepted in "
                        + "\(String(format: "%.2f", seconds)) s; well-behaved latency median "
                        + "\(latencies[latencies.count / 2]), max \(latencies.last ?? .zero)")
            }
        }
    }
}
