import Foundation
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Issue 25, backpressure: while Redis does not answer, ingress queues no more than its Redis
/// connection's bound (`maxQueuedCommands`) and answers the rest 503 at once, saying truthfully
/// whether the request might have been enqueued; nothing answered 202 is missing.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct IngressBackpressureTests {
    @Test("CLIENT PAUSE 8000 ALL under load: past the bound, 503 refused at once; every 202 is in Redis")
    func pausedRedisIsRefusedAtOnce() async throws {
        // A Redis of this test's own: CLIENT PAUSE ALL would stall every other test's clients.
        let server = try await PrivateRedisServer()
        // A timeout longer than the pause, so the commands in line get their replies after it.
        var configuration = server.configuration(commandTimeout: .seconds(10))
        configuration.maxQueuedCommands = 16
        let outcome = await RedisAsyncFixtureOutcome.of {
            try await IngressEnqueueTests.withIngress(redis: configuration) { base, keys in
                // One connection per request: none waits for the client's pool while Redis is paused.
                let http = BookingClient(baseURL: base, connections: 256)
                let run = IntegrationEnvironment.uniqueName("r")
                // The client is shut down on every path (its deinit traps otherwise); a request
                // that fails outright is recorded (status 0, its error) rather than thrown.
                let sent = await RedisAsyncFixtureOutcome.value {
                    // The connection is open and the enqueue script loaded before the pause.
                    #expect(try await http.book(requestID: "\(run)-warm", userID: 1, slotID: 1) == 202)

                    let admin = try RedisConnection(configuration: server.configuration(commandTimeout: .seconds(5)))
                    #expect(try admin.send("CLIENT", "PAUSE", 8000, "ALL") == .status("OK"))
                    let clock = ContinuousClock()
                    let start = clock.now
                    return await withTaskGroup(
                        of: (index: Int, status: Int, outcome: String?, retryAfter: String?, after: Duration).self
                    ) { group in
                        for index in 0..<200 {
                            group.addTask {
                                do {
                                    let answer = try await http.bookAnswer(
                                        requestID: "\(run)-\(index)", userID: Int64(index + 1), slotID: 7)
                                    return (index, answer.status, answer.outcome, answer.retryAfter, clock.now - start)
                                } catch {
                                    return (index, 0, "\(error)", nil, clock.now - start)
                                }
                            }
                        }
                        return await group.reduce(into: []) { $0.append($1) }
                    }
                }
                await http.shutdown()
                let answers = try sent.get()
                let failed = answers.filter { $0.status == 0 }
                #expect(failed.isEmpty, "requests that got no answer: \(failed.prefix(3).map { $0.outcome ?? "" })")

                let accepted = answers.filter { $0.status == 202 }
                let refused = answers.filter { $0.status == 503 && $0.outcome == "refused" }
                let unknown = answers.filter { $0.status == 503 && $0.outcome == "unknown" }
                #expect(accepted.count + refused.count + unknown.count == 200, "\(answers.map(\.status))")
                #expect(answers.allSatisfy { $0.status == 202 || $0.retryAfter != nil })
                // Past the bound, refused while Redis was still paused, not after it.
                #expect(refused.count >= 100, "refused \(refused.count), accepted \(accepted.count)")
                // (8 s of pause, 6 s of margin for a loaded machine: the whole suite runs at once.)
                #expect(refused.allSatisfy { $0.after < .seconds(6) }, "\(refused.map(\.after).max() ?? .zero)")
                // The ones in line waited for the pause to end, and were enqueued.
                #expect(accepted.count >= 1)
                #expect(accepted.allSatisfy { $0.after >= .seconds(7) }, "\(accepted.map(\.after).min() ?? .zero)")

                // Refused means not enqueued; 202 means enqueued (its pending marker is there);
                // unknown may be either. The stream holds exactly the enqueued ones.
                let check = try RedisConnection(configuration: server.configuration(commandTimeout: .seconds(10)))
                func enqueued(_ index: Int) throws -> Bool {
                    try check.send("EXISTS", keys.result("\(run)-\(index)")) == .integer(1)
                }
                for answer in accepted {
                    #expect(try enqueued(answer.index), "202 for \(answer.index) but not in Redis")
                }
                for answer in refused { #expect(try !enqueued(answer.index), "refused \(answer.index) but enqueued") }
                let unknownEnqueued = try unknown.filter { try enqueued($0.index) }.count
                #expect(
                    try check.send("XLEN", keys.stream("bookings"))
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
