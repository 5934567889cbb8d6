import ArgumentParser
import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdSupervisor

/// `leasehold status`: the queue at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Per stream: length, pending, oldest pending age, consumers; retry backlog, dead letters, leader.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "JSON for scripts.")
    var json = false

    struct StreamStatus: Codable {
        var stream: String
        var length: Int64
        var pending: Int64
        var oldestPendingAgeSeconds: Double?
        var undelivered: Int64?
        var consumers: Int64

        enum CodingKeys: String, CodingKey {
            case stream, length, pending, undelivered, consumers
            case oldestPendingAgeSeconds = "oldest_pending_age_seconds"
        }
    }

    struct Status: Codable {
        var streams: [StreamStatus]
        var retryBacklog: Int64
        var deadLetters: Int64
        var leader: String?

        enum CodingKeys: String, CodingKey {
            case streams, leader
            case retryBacklog = "retry_backlog"
            case deadLetters = "dead_letters"
        }
    }

    func run() async throws {
        _ = common.bootstrapLogging(label: "leasehold.status")
        let keys = common.redisKeys
        let redis = RedisClient(configuration: try common.redisConfiguration(), size: 1)
        let postgres = PostgresClient(configuration: common.postgresConfiguration(role: "status"), size: 1)
        let status: Status
        do {
            status = try await collect(keys: keys, redis: redis, postgres: postgres)
        } catch {
            await redis.close()
            await postgres.close()
            throw error
        }
        await redis.close()
        await postgres.close()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        print("STREAM                         LENGTH  PENDING  OLDEST-PENDING  UNDELIVERED  CONSUMERS")
        for stream in status.streams {
            let age = stream.oldestPendingAgeSeconds.map { String(format: "%.1fs", $0) } ?? "-"
            print(
                stream.stream.padding(toLength: 30, withPad: " ", startingAt: 0)
                    + " \(String(stream.length).leftPadded(6))  \(String(stream.pending).leftPadded(7))  "
                    + "\(age.leftPadded(14))  \((stream.undelivered.map(String.init) ?? "?").leftPadded(11))  "
                    + String(stream.consumers).leftPadded(9))
        }
        print(
            "retry backlog: \(status.retryBacklog)   dead letters: \(status.deadLetters)   leader: \(status.leader ?? "none")"
        )
    }

    private func collect(keys: RedisKeys, redis: RedisClient, postgres: PostgresClient) async throws -> Status {
        var streams: [StreamStatus] = []
        for source in ["telegram", "bookings", "yookassa"] {
            let stream = keys.stream(source)
            let length = try await redis.send("XLEN", stream).int ?? 0
            var pending: Int64 = 0
            var oldestAge: Double?
            var undelivered: Int64?
            var consumers: Int64 = 0
            if let group = try await ConsumerGroupInfo.read(stream: stream, redis: redis) {
                pending = group.pending
                consumers = group.consumers
                undelivered = group.lag
                let summary = try await redis.send("XPENDING", stream, RedisKeys.consumerGroup)
                if let oldest = summary.array?[1].string, let ms = Double(oldest.split(separator: "-").first ?? "") {
                    oldestAge = Date().timeIntervalSince1970 - ms / 1000
                }
            }
            streams.append(
                StreamStatus(
                    stream: stream, length: length, pending: pending, oldestPendingAgeSeconds: oldestAge,
                    undelivered: undelivered, consumers: consumers))
        }
        let backlog = try await redis.send("ZCARD", keys.retrySchedule).int ?? 0
        let leader = try await redis.withConnection { try LeaderElector.currentLeader(keys: keys, on: $0) }
        let dead = try await postgres.query("SELECT count(*) FROM dead_letters WHERE status = 'dead'")
            .single().decode(Int64.self, at: 0)
        return Status(streams: streams, retryBacklog: backlog, deadLetters: dead, leader: leader)
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
