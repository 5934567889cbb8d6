import ArgumentParser
import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis

/// `leasehold status`: the queue at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Per stream: length, pending, oldest pending age, consumers; retry backlog, dead letters, leader.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "JSON for scripts.")
    var json = false

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.status")
        let keys = common.redisKeys
        let status = try await common.withClients(role: "status") { redis, postgres in
            try await QueueStatus.read(keys: keys, redis: redis, postgres: postgres)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        print("STREAM                         LENGTH  PENDING  OLDEST-PENDING  UNDELIVERED  CONSUMERS  PAUSED")
        for stream in status.streams {
            let age = stream.oldestPendingAgeSeconds.map { String(format: "%.1fs", $0) } ?? "-"
            print(
                stream.stream.padding(toLength: 30, withPad: " ", startingAt: 0)
                    + " \(String(stream.length).leftPadded(6))  \(String(stream.pending).leftPadded(7))  "
                    + "\(age.leftPadded(14))  \((stream.undelivered.map(String.init) ?? "?").leftPadded(11))  "
                    + String(stream.consumers).leftPadded(9)
                    + (stream.paused.map { "  since \($0.at.formatted(.iso8601)) by \($0.by): \($0.reason)" } ?? ""))
        }
        print(
            "retry backlog: \(status.retryBacklog)   dead letters: \(status.deadLetters)   leader: \(status.leader ?? "none")"
        )
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
