import Foundation
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Backpressure: while Redis does not answer, ingress queues no more than its Redis
/// connection's bound (`maxQueuedCommands`) and answers the rest 503 at once, saying truthfully
/// whether the request might have been enqueued; nothing answered 202 is missing.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct IngressBackpressureTests {
    typealias Answer = (index: Int, status: Int, outcome: String?, retryAfter: String?, at: ContinuousClock.Instant)
    enum Event: Sendable {
        case answer(Answer)
        case thawed(ContinuousClock.Instant)
    }

    @Test("Redis frozen under load: past the bound, 503 refused while it is frozen; every 202 is in Redis")
    func frozenRedisIsRefusedAtOnce() async throws {
        // A Redis of this test's own: it is frozen (SIGSTOP) while 200 bookings arrive.
        let server = try await PrivateRedisServer()
        // A timeout longer than any freeze below, so the commands in line get their replies after it.
        var configuration = server.configuration(commandTimeout: .seconds(40))
        configuration.maxQueuedCommands = 16
        let outcome = await RedisAsyncFixtureOutcome.of {
            try await IngressEnqueueTests.withIngress(redis: configuration) { base, keys in
                // One connection per request: none waits for the client's pool while Redis is frozen.
                let http = BookingClient(baseURL: base, connections: 256)
                let run = IntegrationEnvironment.uniqueName("r")
                let answeredSoFar = SharedCounter()
                // The client is shut down on every path (its deinit traps otherwise); a request
                // that fails outright is recorded (status 0, its error) rather than thrown.
                let sent = await RedisAsyncFixtureOutcome.value { () async throws -> [Event] in
                    // The connection is open and the enqueue script loaded before the freeze.
                    #expect(try await http.book(requestID: "\(run)-warm", userID: 1, slotID: 1) == 202)

                    server.freeze()
                    let clock = ContinuousClock()
                    return await withTaskGroup(of: Event.self) { group -> [Event] in
                        for index in 0..<200 {
                            group.addTask {
                                do {
                                    let answer = try await http.bookAnswer(
                                        requestID: "\(run)-\(index)", userID: Int64(index + 1), slotID: 7)
                                    answeredSoFar.add()
                                    return .answer((index, answer.status, answer.outcome, answer.retryAfter, clock.now))
                                } catch {
                                    answeredSoFar.add()
                                    return .answer((index, 0, "\(error)", nil, clock.now))
                                }
                            }
                        }
                        // Redis stays frozen until the answers stop coming (everything past the 16
                        // in line is answered, and nothing more for a second), or 30 s have passed:
                        // the refusals came while nothing answered, however slow the machine.
                        group.addTask {
                            let deadline = clock.now + .seconds(30)
                            var seen = 0
                            var quietSince = clock.now
                            while clock.now < deadline {
                                let now = answeredSoFar.value
                                if now != seen {
                                    (seen, quietSince) = (now, clock.now)
                                } else if seen >= 150, clock.now - quietSince >= .seconds(1) {
                                    break
                                }
                                try? await Task.sleep(for: .milliseconds(20))
                            }
                            server.thaw()
                            return .thawed(clock.now)
                        }
                        return await group.reduce(into: []) { $0.append($1) }
                    }
                }
                server.thaw()
                await http.shutdown()
                let events = try sent.get()
                let answers = events.compactMap { if case .answer(let answer) = $0 { answer } else { nil } }
                let thawed = try #require(
                    events.lazy.compactMap { if case .thawed(let at) = $0 { at } else { nil } }.first)
                let failed = answers.filter { $0.status == 0 }
                #expect(failed.isEmpty, "requests that got no answer: \(failed.prefix(3).map { $0.outcome ?? "" })")

                let accepted = answers.filter { $0.status == 202 }
                let refused = answers.filter { $0.status == 503 && $0.outcome == "refused" }
                let unknown = answers.filter { $0.status == 503 && $0.outcome == "unknown" }
                #expect(accepted.count + refused.count + unknown.count == 200, "\(answers.map(\.status))")
                #expect(answers.allSatisfy { $0.status == 202 || $0.retryAfter != nil })
                // Past the bound, refused while Redis was still frozen, not after it.
                #expect(refused.count >= 150, "refused \(refused.count), accepted \(accepted.count)")
                #expect(refused.allSatisfy { $0.at <= thawed }, "a refusal came only after Redis was thawed")
                // The ones in line waited for the freeze to end, and were enqueued.
                #expect(accepted.count >= 1)
                #expect(accepted.allSatisfy { $0.at >= thawed }, "a 202 came while Redis was frozen")

                // Refused means not enqueued; 202 means enqueued (its pending marker is there);
                // unknown may be either. The stream holds exactly the enqueued ones.
                let check = RedisClient(configuration: server.configuration(commandTimeout: .seconds(10)))
                defer { check.close() }
                func enqueued(_ index: Int) async throws -> Bool {
                    try await check.send("EXISTS", keys.result("\(run)-\(index)")) == .integer(1)
                }
                for answer in accepted {
                    #expect(try await enqueued(answer.index), "202 for \(answer.index) but not in Redis")
                }
                for answer in refused {
                    #expect(try await !enqueued(answer.index), "refused \(answer.index) but enqueued")
                }
                var unknownEnqueued = 0
                for answer in unknown {
                    if try await enqueued(answer.index) { unknownEnqueued += 1 }
                }
                #expect(
                    try await check.send("XLEN", keys.stream("bookings"))
                        == .integer(Int64(1 + accepted.count + unknownEnqueued)))
            }
        }
        await server.kill()
        try outcome.get()
    }
}

/// The result of an async throwing body, so cleanup can run before it is rethrown.
enum RedisAsyncFixtureOutcome {
    static func value<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }

    static func of(_ body: () async throws -> Void) async -> Result<Void, any Error> {
        do {
            try await body()
            return .success(())
        } catch {
            return .failure(error)
        }
    }
}
