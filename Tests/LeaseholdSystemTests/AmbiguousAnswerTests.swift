import Foundation
import LeaseholdLocalStack
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// A 503 says whether the request may have been accepted: `Leasehold-Outcome: unknown` when
/// Redis stopped answering in the middle of the enqueue (the entry may be in the stream: retry
/// with the same key, it is processed at most once), `refused` when nothing was sent.
extension SystemTests {
    @Suite("Ambiguous answers")
    struct AmbiguousAnswerTests {
        @Test func a503SaysWhetherTheRequestMayHaveBeenEnqueued() async throws {
            let stack = try await ProcessStack.start(ingress: 0, workers: 0)
            let port = try freeLoopbackPort()
            let candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
                Issue.record("redis-server not found in \(candidates)")
                return
            }
            let redis = try ChildProcess(
                name: "redis-own", executable: URL(fileURLWithPath: binary),
                arguments: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                log: FileManager.default.temporaryDirectory.appendingPathComponent("redis-own-\(UUID()).log"))
            defer { redis.send(SIGKILL) }
            let ingress = try stack.addIngress(environment: ["REDIS_URL": "redis://127.0.0.1:\(port)/0"])
            try await waitUntil {
                (try? await stack.request(.GET, "/healthz", ingress: ingress).status) == 200
            }
            func outcome(_ result: ProcessStack.HTTPResult) -> String? {
                result.headers.first { $0.0.lowercased() == "leasehold-outcome" }?.1
            }
            let own = RedisClient(configuration: RedisConfiguration(port: port), size: 1)
            defer { own.close() }
            func streamLength() async throws -> Int {
                Int(try await own.send("XLEN", stack.stream("bookings")).int ?? -1)
            }
            #expect(try await stack.book(requestID: "a-1", userID: 1, slotID: 1, ingress: ingress).status == 202)

            // Redis stops answering mid-call: the script was sent, so the outcome is unknown…
            redis.send(SIGSTOP)
            let stalled = try await stack.book(requestID: "a-2", userID: 2, slotID: 1, ingress: ingress)
            redis.send(SIGCONT)
            #expect(stalled.status == 503, "\(stalled.body)")
            #expect(outcome(stalled) == "unknown", "\(stalled.headers)")
            #expect(stalled.body.contains("outcome_unknown"), "\(stalled.body)")
            // … and indeed it was enqueued once Redis went on.
            try await waitUntil(timeout: .seconds(10)) { try await streamLength() == 2 }

            // Redis gone: once ingress cannot even connect, the 503 is a definite refusal.
            redis.send(SIGKILL)
            await redis.stop(signal: SIGKILL, timeout: .seconds(5))
            var answers: [String?] = []
            for attempt in 0..<3 {
                let answer = try await stack.book(requestID: "a-3-\(attempt)", userID: 3, slotID: 1, ingress: ingress)
                #expect(answer.status == 503)
                answers.append(outcome(answer))
            }
            #expect(answers.last == "refused", "\(answers)")
            await stack.shutdown()
        }
    }
}
