import Foundation
import LeaseholdLocalStack
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// `LEASEHOLD_REDIS_MIN_REPLICAS`: ingress answers 2xx only once a replica has the entry.
extension SystemTests {
    @Suite("Replica acknowledgement before the 2xx (WAIT)")
    struct ReplicaAcknowledgementTests {
        @Test func everyAcceptedEntryIsOnTheReplicaAndAStalledReplicaTurnsAnswersInto503() async throws {
            try await MasterAndReplica.run { pair in
                let stack = try await ProcessStack.start(
                    ingress: 1, workers: 0,
                    ingressEnvironment: [
                        "REDIS_URL": pair.masterURL, "LEASEHOLD_REDIS_MIN_REPLICAS": "1",
                        "LEASEHOLD_REDIS_REPLICA_TIMEOUT_MS": "500",
                    ])
                // A second ingress on the same master without the setting: the control.
                let unconfirmed = try stack.addIngress(environment: ["REDIS_URL": pair.masterURL])
                try await stack.waitForIngress(unconfirmed)
                let keys = stack.keys

                // With the replica up: 200 concurrent requests, each one's pending marker already
                // on the replica when its 202 arrives (checked right then, not after a pause).
                let missing = try await withThrowingTaskGroup(of: String?.self) { group in
                    for index in 0..<200 {
                        group.addTask {
                            let response = try await stack.book(requestID: "ack-\(index)", userID: 1, slotID: 1)
                            guard response.status == 202 else { return "ack-\(index): \(response.status)" }
                            let onReplica = try await pair.replica.send("EXISTS", keys.result("ack-\(index)"))
                            return onReplica.int == 1 ? nil : "ack-\(index) answered 202 before the replica had it"
                        }
                    }
                    return try await group.reduce(into: [String]()) { if let problem = $1 { $0.append(problem) } }
                }
                #expect(missing.isEmpty, "\(missing.prefix(5))")
                #expect(try await pair.replica.send("XLEN", keys.stream("bookings")).int == 200)

                // The replica stalls (SIGSTOP: connected, but it acknowledges nothing). Ingress
                // must not answer 2xx: 503, outcome unknown, after about the timeout. The entry
                // is on the master all the same (to be processed; a retry is processed once).
                pair.replicaProcess.send(SIGSTOP)
                let started = ContinuousClock.now
                let refused = try await stack.book(requestID: "stalled-1", userID: 1, slotID: 1)
                let waited = ContinuousClock.now - started
                #expect(refused.status == 503, "\(refused.status) \(refused.body)")
                #expect(refused.header("Leasehold-Outcome") == "unknown")
                #expect(refused.body.contains("0 of 1 Redis replicas acknowledged"), "\(refused.body)")
                #expect(waited >= .milliseconds(450), "it waited for the replica: \(waited)")
                #expect(try await pair.master.send("EXISTS", keys.result("stalled-1")).int == 1)
                // Without the setting, the same situation answers 202 at once: the difference is the WAIT.
                #expect(
                    try await stack.book(requestID: "stalled-2", userID: 1, slotID: 1, ingress: unconfirmed).status
                        == 202)
                let metrics = try await stack.fetch("\(stack.ingressURL(0))/metrics")
                #expect(metrics.body.contains(#"reason="replicas_unconfirmed""#), "the refusal is counted")

                // The replica resumes: confirmed answers again, the retry of the refused request included.
                pair.replicaProcess.send(SIGCONT)
                #expect(try await stack.book(requestID: "stalled-1", userID: 1, slotID: 1).status == 202)
                #expect(try await stack.book(requestID: "after-1", userID: 1, slotID: 1).status == 202)
                #expect(try await pair.replica.send("EXISTS", keys.result("after-1")).int == 1)
                let statuses = await stack.shutdown()
                #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
            }
        }

        /// With replicas confirmed, the script goes out pipelined with `CLIENT ID`: its flood
        /// refusal must come back as a 429 too, with nothing written and nothing waited for.
        @Test func floodControlAnswers429OnTheConfirmedPath() async throws {
            try await MasterAndReplica.run { pair in
                let stack = try await ProcessStack.start(
                    ingress: 1, workers: 0,
                    ingressEnvironment: [
                        "REDIS_URL": pair.masterURL, "LEASEHOLD_REDIS_MIN_REPLICAS": "1",
                        "LEASEHOLD_API_FLOOD_RATE": "1", "LEASEHOLD_API_FLOOD_BURST": "3",
                    ])
                let keys = stack.keys
                let start = ContinuousClock.now
                var accepted: [String] = []
                var throttled: [String] = []
                for index in 0..<10 {
                    let requestID = "flood-\(index)"
                    let response = try await stack.book(requestID: requestID, userID: 1, slotID: 1)
                    switch response.status {
                    case 202: accepted.append(requestID)
                    case 429:
                        throttled.append(requestID)
                        #expect(response.header("Retry-After") == "1")
                    default: Issue.record("\(requestID): \(response.status) \(response.body)")
                    }
                }
                let elapsed = ContinuousClock.now - start
                let refill = Int(elapsed.components.seconds)
                #expect(accepted.count >= 3 && accepted.count <= 3 + refill, "\(accepted.count) in \(elapsed)")
                if elapsed < .seconds(7) { #expect(!throttled.isEmpty) }
                for requestID in accepted {
                    #expect(try await pair.replica.send("EXISTS", keys.result(requestID)).int == 1, "\(requestID)")
                }
                for requestID in throttled {
                    #expect(try await pair.master.send("EXISTS", keys.result(requestID)).int == 0, "\(requestID)")
                }
                #expect(try await pair.master.send("XLEN", keys.stream("bookings")).int == Int64(accepted.count))
                let statuses = await stack.shutdown()
                #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
            }
        }
    }
}

/// A throwaway Redis master and one replica on loopback ports (the shared integration Redis is
/// left alone). A shell watchdog kills both if the test process dies.
struct MasterAndReplica {
    let masterURL: String
    let master: RedisClient
    let replica: RedisClient
    let replicaProcess: ChildProcess

    static func run(_ body: (MasterAndReplica) async throws -> Void) async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") || !IntegrationEnvironment.isRequired,
            "redis-server is required")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else { return }
        let directory = try makeTemporaryDirectory("redis-replica")
        let (masterPort, replicaPort) = (try freeLoopbackPort(), try freeLoopbackPort())
        func server(_ name: String, _ port: Int, _ extra: [String]) throws -> ChildProcess {
            try ChildProcess(
                name: name, executable: URL(fileURLWithPath: "/usr/bin/redis-server"),
                arguments: [
                    "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no",
                    "--dir", directory.path, "--dbfilename", "\(name).rdb", "--daemonize", "no", "--logfile", "",
                ] + extra,
                log: directory.appendingPathComponent("\(name).log"))
        }
        let masterProcess = try server("master", masterPort, [])
        let replicaProcess = try server("replica", replicaPort, ["--replicaof", "127.0.0.1", String(masterPort)])
        let watchdog = try ChildProcess(
            name: "replica-watchdog", executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [
                "-c", #"while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$2" "$3" 2>/dev/null"#,
                "watchdog", String(getpid()), String(masterProcess.pid), String(replicaProcess.pid),
            ],
            log: directory.appendingPathComponent("watchdog.log"))
        let masterURL = "redis://127.0.0.1:\(masterPort)/0"
        let master = RedisClient(configuration: try RedisConfiguration(url: masterURL), size: 2)
        let replica = RedisClient(
            configuration: try RedisConfiguration(url: "redis://127.0.0.1:\(replicaPort)/0"), size: 8)
        let pair = MasterAndReplica(
            masterURL: masterURL, master: master, replica: replica, replicaProcess: replicaProcess)
        do {
            try await pair.waitUntilInSync()
            try await body(pair)
        } catch {
            await pair.stop(master: masterProcess, watchdog: watchdog, directory: directory)
            throw error
        }
        await pair.stop(master: masterProcess, watchdog: watchdog, directory: directory)
    }

    /// Until the master reports one replica online.
    private func waitUntilInSync() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let info = (try? await master.send("INFO", "replication"))?.string ?? ""
            if info.contains("connected_slaves:1"), info.contains("state=online") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSetupError("the replica never came online")
    }

    private func stop(master masterProcess: ChildProcess, watchdog: ChildProcess, directory: URL) async {
        replicaProcess.send(SIGCONT)
        master.close()
        replica.close()
        await replicaProcess.stop(signal: SIGKILL, timeout: .seconds(10))
        await masterProcess.stop(signal: SIGKILL, timeout: .seconds(10))
        await watchdog.stop(signal: SIGKILL, timeout: .seconds(10))
        try? FileManager.default.removeItem(at: directory)
    }
}
