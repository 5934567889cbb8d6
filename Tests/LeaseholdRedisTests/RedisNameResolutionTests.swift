import Foundation
import LeaseholdReactor
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// The non-blocking connection resolves its host name off the reactor and hands hiredis an
/// address: a name the resolver knows connects, addresses that refuse are passed over, and a
/// lookup that hangs fails the connect after the connect timeout, naming the host.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct RedisNameResolutionTests {
    func onReactor<T: Sendable>(_ body: @escaping @Sendable (Reactor) async throws -> T) async throws -> T {
        let reactor = Reactor(label: "test.redis-resolver")
        defer { reactor.shutDown() }
        return try await Task(executorPreference: reactor) { try await body(reactor) }.value
    }

    @Test("a name resolved to a refusing address and then the server's: connected to the server")
    func connectsByResolvedAddress() async throws {
        var configuration = try IntegrationEnvironment.redisConfiguration()
        let name = "leasehold-redis-under-test.invalid"
        // 127.0.0.2 on the server's port: nothing listens there (the server binds 127.0.0.1).
        let addresses = ["127.0.0.2", configuration.host]
        configuration.host = name
        let resolver = NameResolver(lookup: { host in
            host == name ? .success(addresses) : .failure(.failed("Name or service not known"))
        })
        let resolvedByName = configuration
        let reply = try await onReactor { reactor in
            let connection = try await RedisConnection.connect(
                configuration: resolvedByName, reactor: reactor, resolver: resolver)
            defer { connection.close() }
            return try await connection.send("PING")
        }
        #expect(reply == .status("PONG"))
    }

    @Test("a lookup that hangs fails the connect after connectTimeout: name resolution timed out")
    func hangingLookupTimesOut() async throws {
        var configuration = try IntegrationEnvironment.redisConfiguration()
        configuration.host = "silent-redis.invalid"
        configuration.connectTimeout = .milliseconds(500)
        let gate = DispatchSemaphore(value: 0)
        let resolver = NameResolver(lookup: { _ in
            gate.wait()
            return .failure(.temporary("Temporary failure in name resolution"))
        })
        let clock = ContinuousClock()
        let started = clock.now
        let silent = configuration
        let message = try await onReactor { reactor -> String? in
            do {
                _ = try await RedisConnection.connect(
                    configuration: silent, reactor: reactor, resolver: resolver)
                return nil
            } catch let error as RedisError {
                #expect(error.code == .connect)
                return "\(error)"
            }
        }
        let took = clock.now - started
        gate.signal()
        let text = try #require(message)
        #expect(text.contains("silent-redis.invalid") && text.contains("name resolution timed out"), "\(text)")
        // The lookup never returns until the test lets it: any bound proves the connect timeout
        // ended the wait. Generous, because the whole suite shares two cores in CI.
        #expect(took >= .milliseconds(500) && took < .seconds(5), "took \(took)")
    }
}
