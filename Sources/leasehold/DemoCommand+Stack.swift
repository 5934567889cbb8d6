import ArgumentParser
import Foundation
import LeaseholdLoadTest
import LeaseholdLocalStack
import Logging

// The demo's stack: PostgreSQL and Redis (or a Redis Cluster), what every role is given, the
// role processes, the wait until they answer, and stopping all of it.

extension DemoCommand {
    /// Starts PostgreSQL and Redis (or a Redis Cluster), with the signal handling that stops them
    /// and every role when the demo is interrupted.
    func startServers(root: URL, logger: Logger) async throws -> (Servers, DemoSignals) {
        Self.say("starting PostgreSQL and Redis (data in \(root.appendingPathComponent("local").path))")
        let stack = try LocalStack(
            options: LocalStackOptions(directory: root.appendingPathComponent("local")), logger: logger)
        // The roles, PostgreSQL and Redis run in process groups of their own, so a terminal's
        // Ctrl-C does not reach them: a signal to the demo stops them all, then the demo exits.
        let signals = DemoSignals()
        signals.onInterrupt { signal, roles in
            Self.say("interrupted (signal \(signal)); stopping everything")
            await Self.stopAll(roles, stack: stack)
            Foundation.exit(128 + signal)
        }
        try await stack.start()
        // A cluster's nodes die with this process (its watchdog), so a signal needs no more.
        guard let masters = redisCluster else { return (Servers(stack: stack), signals) }
        let replicas = redisClusterReplicas ?? 0
        Self.say("starting a Redis Cluster: \(masters) masters, \(replicas) replicas each")
        do {
            let cluster = try await LocalRedisCluster.start(
                masters: masters, replicasPerMaster: replicas,
                directory: root.appendingPathComponent("local/redis-cluster"))
            return (Servers(stack: stack, cluster: cluster), signals)
        } catch {
            await stack.stop()
            throw error
        }
    }

    /// The roles' environment: this process's, with the servers' URLs, fresh secrets and the
    /// settings of the run (chaos, overload, the fake Bot API) over it.
    func roleSetup(_ servers: Servers, botAPI: FakeBotAPI?) -> RoleSetup {
        let token = UUID().uuidString
        let telegramSecret = UUID().uuidString
        var environment = ProcessInfo.processInfo.environment
        environment["POSTGRES_URL"] = servers.stack.postgresURL
        environment["REDIS_URL"] = servers.redisURL
        var shardsSetHere: Int?
        if let masters = redisCluster, (environment["LEASEHOLD_REDIS_SHARDS"] ?? "").isEmpty {
            environment["LEASEHOLD_REDIS_SHARDS"] = String(masters)
            shardsSetHere = masters
        }
        environment["LEASEHOLD_API_TOKEN"] = token
        environment["TELEGRAM_WEBHOOK_SECRET"] = telegramSecret
        environment["LOG_LEVEL"] = "info"
        // Every process shares this machine's cores: an ingress with one event loop thread (its
        // handlers and Redis run on a reactor thread of their own) measured cheaper per request
        // than one with a thread per core.
        if environment["LEASEHOLD_INGRESS_EVENT_LOOP_THREADS"] == nil {
            environment["LEASEHOLD_INGRESS_EVENT_LOOP_THREADS"] = "1"
        }
        if chaos { environment.merge(ChaosSchedule.environment) { _, chaos in chaos } }
        // The flood fills the backlog to the mark in seconds, and the recovery phase drains it.
        if overload && (environment["LEASEHOLD_STREAM_HIGH_WATER_MARK"] ?? "").isEmpty {
            environment["LEASEHOLD_STREAM_HIGH_WATER_MARK"] = "20000"
        }
        if let botAPI {
            environment["TELEGRAM_API_BASE_URL"] = botAPI.url
            environment["TELEGRAM_BOT_TOKEN"] = FakeBotAPI.token
        }
        return RoleSetup(
            environment: environment, token: token, telegramSecret: telegramSecret, shardsSetHere: shardsSetHere)
    }

    /// Starts ingress ×--ingresses on ports of their own, then the workers, the supervisors and
    /// the notifiers; their logs go to `logs`.
    func startRoles(_ roles: RoleProcesses, logs: URL) throws -> Endpoints {
        let ports = try (0..<ingresses).map { _ in try freeLoopbackPort() }
        for (index, port) in ports.enumerated() {
            try roles.start(
                .init(
                    name: "ingress-\(index)",
                    arguments: ["ingress", "--host", "127.0.0.1", "--port", String(port)],
                    log: logs.appendingPathComponent("ingress-\(index).log")))
        }
        // Under --overload each worker serves /healthz and /readyz for the probes.
        let workerPorts = try (0..<workerCount).map { _ in overload ? try freeLoopbackPort() : nil }
        for (index, port) in workerPorts.enumerated() {
            try roles.start(
                .init(
                    name: "worker-\(index)", arguments: ["worker", "--consumer-name", "demo-worker-\(index)"],
                    log: logs.appendingPathComponent("worker-\(index).log"),
                    environment: port.map {
                        ["LEASEHOLD_METRICS_PORT": String($0), "LEASEHOLD_METRICS_HOST": "127.0.0.1"]
                    }
                        ?? [:]))
        }
        for index in 0..<supervisorCount {
            try roles.start(
                .init(
                    name: "supervisor-\(index)", arguments: ["supervisor"],
                    log: logs.appendingPathComponent("supervisor-\(index).log")))
        }
        for index in 0..<notifierCount {
            try roles.start(
                .init(
                    name: "notifier-\(index)", arguments: ["notifier", "--name", "demo-notifier-\(index)"],
                    log: logs.appendingPathComponent("notifier-\(index).log")))
        }
        return Endpoints(urls: ports.map { "http://127.0.0.1:\($0)" }, workerPorts: workerPorts)
    }

    /// Waits (60 s at most for each step) until every ingress answers `/healthz`, then until
    /// every worker has opened and warmed up its connections and reads (its `worker started`
    /// line), so the load does not begin while the workers are still starting: the first
    /// second's latencies would measure the demo's start, not the system. A role that exits
    /// meanwhile, or a step that runs out of time, is a validation failure naming it and its log.
    func waitUntilReady(_ roles: RoleProcesses, _ endpoints: Endpoints) async throws {
        do {
            try await roles.waitUntilAnswering(endpoints.urls.map { $0 + "/healthz" }, status: IngressProbe.status)
            try await roles.waitForOutput("worker started", from: roles.named("worker-"))
            // The probes start with the load: every worker's /readyz answers 200 first (the
            // `worker started` line comes a moment before a worker counts itself as reading).
            try await roles.waitUntilAnswering(
                endpoints.workerPorts.compactMap { $0.map { "http://127.0.0.1:\($0)/readyz" } },
                status: IngressProbe.status)
        } catch let error as RoleProcessError {
            if case .silent(let name, _, let log) = error {
                throw ValidationError("\(name) did not start reading within 60 s; see \(log.path)")
            }
            throw ValidationError(error.description)
        }
    }

    static func say(_ text: String) {
        FileHandle.standardError.write(Data("==> \(text)\n".utf8))
    }

    /// Stops every role (SIGTERM, SIGKILL for those still running after 30 s), then the Redis
    /// Cluster, Redis and PostgreSQL. `roles` is `nil` when a signal came before any role started.
    static func stopAll(_ roles: RoleProcesses?, stack: LocalStack, cluster: LocalRedisCluster? = nil) async {
        let names = roles?.all.map(\.name) ?? []
        Self.say("stopping \(names.joined(separator: ", ")) (SIGTERM), then Redis and PostgreSQL")
        await roles?.stopAll(timeout: .seconds(30))
        await cluster?.stop()
        await stack.stop()
    }
}
