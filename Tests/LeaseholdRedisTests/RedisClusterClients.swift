import LeaseholdReactor
import LeaseholdRedis
import Testing

/// The Redis Cluster client the cluster suites run every scenario against: ``RedisClusterClient``
/// (non-blocking connections on a reactor). A kind still, so a scenario names the client it ran on.
enum ClusterClientKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case reactor

    var testDescription: String { rawValue }
}

/// What the cluster tests call on the client.
protocol ClusterClientUnderTest: Sendable {
    @discardableResult
    func send(_ command: RedisCommand, timeout: Duration?) async throws -> RedisValue
    @discardableResult
    func send(_ arguments: any RedisArgument...) async throws -> RedisValue
    @discardableResult
    func send(_ command: RedisCommand, keys: [any RedisArgument], timeout: Duration?) async throws -> RedisValue
    func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue]
    @discardableResult
    func evaluate(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) async throws
        -> RedisValue
    func master(forSlot slot: Int) async throws -> RedisNodeAddress
    var map: RedisClusterMap? { get }
    var mapRefreshes: Int { get }
    var isCluster: Bool { get }
}

extension ClusterClientUnderTest {
    @discardableResult
    func send(_ command: RedisCommand, keys: [any RedisArgument]) async throws -> RedisValue {
        try await send(command, keys: keys, timeout: nil)
    }

    @discardableResult
    func evaluate(_ script: RedisScript, keys: [any RedisArgument]) async throws -> RedisValue {
        try await evaluate(script, keys: keys, arguments: [])
    }
}

extension RedisClusterClient: ClusterClientUnderTest {
    func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        try await pipeline(commands, timeout: nil)
    }
}

enum RedisClusterClients {
    /// Runs `body` with a new client of `kind`, then closes it. The reactor client gets a reactor
    /// of its own, and `body` runs on it (`withTaskExecutorPreference`), as the client requires;
    /// so do the child tasks `body` starts.
    ///
    /// - Parameter connections: per node, the client's `connectionsPerNode`; `nil` for its default.
    static func with<T>(
        _ kind: ClusterClientKind, configuration: RedisConfiguration, connections: Int? = nil,
        _ body: (any ClusterClientUnderTest) async throws -> T
    ) async throws -> T {
        switch kind {
        case .reactor:
            let reactor = Reactor(label: "test.redis-cluster-reactor")
            defer { reactor.shutDown() }
            let client = try RedisClusterClient(
                configuration: configuration, reactor: reactor, connectionsPerNode: connections ?? 1)
            return try await withTaskExecutorPreference(reactor) {
                do {
                    let value = try await body(client)
                    #expect(reactor.isCurrent, "the test body ran on the client's reactor")
                    client.close()
                    return value
                } catch {
                    client.close()
                    throw error
                }
            }
        }
    }
}
