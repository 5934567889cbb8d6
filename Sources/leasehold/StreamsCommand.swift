import ArgumentParser
import Foundation
import LeaseholdConsole
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis

/// `leasehold streams`: pause and resume the processing of a stream during an incident.
struct StreamsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streams",
        abstract: "Pause and resume the processing of a stream (ingress keeps accepting; nothing is lost).",
        discussion: """
            A paused stream's entries wait in Redis: workers claim none (they finish what they \
            hold), the supervisor neither reclaims them nor moves retries onto them, and ingress \
            keeps accepting up to the high-water mark (then 503). Resume picks up in order. A \
            pause is kept in Redis, so it survives restarts. Each pause and resume is recorded in \
            the audit log (console_actions) with who, when and why.

            TARGET is a source (telegram, bookings, yookassa), a stream key, a message kind \
            (booking: telegram and bookings; yookassa.notification: yookassa), or all.
            """,
        subcommands: [StreamsPause.self, StreamsResume.self, StreamsList.self])
}

/// The sources `target` names, or a usage error listing what it may be.
private func sources(named target: String, keys: RedisKeys) throws -> [String] {
    guard let sources = StreamPauses(keys: keys).sources(named: target) else {
        throw ValidationError(
            "\(target) is not a stream: give a source (\(RedisKeys.sources.joined(separator: ", "))), "
                + "a stream key, a kind (\(StreamPauses.kindSources.keys.sorted().joined(separator: ", "))) or all")
    }
    return sources
}

/// Who an action is recorded as: `--by`, else `$USER`, else `unknown`.
private func actor(_ given: String?) -> String {
    given ?? ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "unknown"
}

struct StreamsPause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Stop processing a stream (or a kind, or all) until it is resumed.")

    @OptionGroup var common: CommonOptions

    @Argument(help: "What to pause: a source, a stream key, a kind, or all.")
    var target: String

    @Option(help: "Why, for the audit log and `leasehold status` (e.g. \"payment bug, INC-42\").")
    var reason: String

    @Option(help: "Who pauses it, for the audit log (default: $USER).")
    var by: String?

    func validate() throws {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("--reason must say why (it is shown to everyone who looks)")
        }
    }

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.streams")
        let keys = common.redisKeys
        let sources = try sources(named: target, keys: keys)
        let who = actor(by)
        _ = try await common.withClients(role: "streams") { redis, postgres in
            try await StreamPauseActions(keys: keys).pause(
                sources, by: who, reason: reason, redis: redis, postgres: postgres)
        }
        print("paused \(sources.joined(separator: ", ")): workers claim nothing more from it; ingress keeps accepting")
    }
}

struct StreamsResume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Process a paused stream again, from where it stopped.")

    @OptionGroup var common: CommonOptions

    @Argument(help: "What to resume: a source, a stream key, a kind, or all.")
    var target: String

    @Option(help: "Who resumes it, for the audit log (default: $USER).")
    var by: String?

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.streams")
        let keys = common.redisKeys
        let sources = try sources(named: target, keys: keys)
        let who = actor(by)
        let resumed = try await common.withClients(role: "streams") { redis, postgres in
            try await StreamPauseActions(keys: keys).resume(sources, by: who, redis: redis, postgres: postgres).resumed
        }
        print(resumed.isEmpty ? "nothing was paused" : "resumed \(resumed.joined(separator: ", "))")
    }
}

struct StreamsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The paused streams.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "JSON for scripts.")
    var json = false

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.streams")
        let keys = common.redisKeys
        let redis = RedisClient(configuration: try common.redisConfiguration(), size: 1)
        let paused: [String: StreamPauses.Pause]
        do {
            paused = try await StreamPauses(keys: keys).paused(keys.streams(RedisKeys.sources), via: redis)
        } catch {
            redis.close()
            throw error
        }
        redis.close()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(paused), as: UTF8.self))
            return
        }
        guard !paused.isEmpty else {
            print("no stream is paused")
            return
        }
        for (stream, pause) in paused.sorted(by: { $0.key < $1.key }) {
            print("\(stream)  paused since \(pause.at.formatted(.iso8601)) by \(pause.by): \(pause.reason)")
        }
    }
}
