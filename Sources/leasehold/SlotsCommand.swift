import ArgumentParser
import Foundation
import LeaseholdDomain
import LeaseholdPostgres

/// `leasehold slots`: the admin's schedule tools.
struct SlotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slots",
        abstract: "Manage interview slots and users.",
        subcommands: [SyncSlotsCommand.self]
    )
}

/// `leasehold slots sync`: the admin's /sync_slots.
struct SyncSlotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Upsert a schedule of slots (and create users) without touching booked slots.",
        discussion: """
            The schedule comes from --file (JSON: {"slots": [{"starts_at": "2026-12-01T10:00:00Z", \
            "ends_at": "2026-12-01T10:30:00Z", "interviewer": "anna"}]}) or is generated with --generate N \
            (N consecutive slots of --minutes from --start for --interviewer). New slots are created open; \
            existing ones are reopened unless booked; booked slots are never changed. --close-missing also \
            closes open, unbooked slots of the same interviewers in the schedule's time range that the \
            schedule no longer lists. --users N creates users 1...N that do not exist (chat id = user id). \
            Everything happens in one transaction. Prints a summary, or the report as JSON with --json.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Schedule file (JSON).")
    var file: String?

    @Option(help: "Generate this many consecutive slots instead of reading a file.")
    var generate: Int?

    @Option(help: "First generated slot's start, ISO 8601 (default: tomorrow 09:00 UTC).")
    var start: String?

    @Option(help: "Length of each generated slot in minutes.")
    var minutes: Int = 30

    @Option(help: "Interviewer of the generated slots.")
    var interviewer: String = "default"

    @Option(help: "Create users 1...N if missing.")
    var users: Int?

    @Flag(help: "Close open, unbooked slots the schedule no longer lists.")
    var closeMissing = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    struct ScheduleFile: Decodable {
        var slots: [ScheduleSync.Slot]
    }

    func validate() throws {
        guard (file == nil) != (generate == nil) || (file == nil && generate == nil && users != nil) else {
            throw ValidationError("give exactly one of --file or --generate (or only --users)")
        }
        if let generate, !(1...1_000_000).contains(generate) { throw ValidationError("--generate must be 1...1000000") }
        if let users, !(1...10_000_000).contains(users) { throw ValidationError("--users must be 1...10000000") }
        guard (1...24 * 60).contains(minutes) else { throw ValidationError("--minutes must be 1...1440") }
    }

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.slots")
        let slots = try loadSlots()
        let userIDs = users.map { Array(1...Int64($0)) } ?? []
        let client = PostgresClient(configuration: common.postgresConfiguration, size: 1)
        let closeMissing = self.closeMissing
        let result: Result<(ScheduleSync.Report, Int), any Error>
        do {
            let report = try await client.withTransaction(.init(lockTimeout: .seconds(30), statementTimeout: nil)) {
                connection in
                let sync = ScheduleSync()
                let users = try await sync.ensureUsers(userIDs, on: connection)
                return (try await sync.sync(slots, closeMissing: closeMissing, on: connection), users)
            }
            result = .success(report)
        } catch let error as PostgresTransactionError {
            result = .failure(error.bodyError ?? error)
        } catch {
            result = .failure(error)
        }
        await client.close()
        let (report, createdUsers) = try result.get()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(
                "slots: \(report.created) created, \(report.updated) updated, \(report.bookedUntouched) booked (untouched), "
                    + "\(report.closed) closed; users: \(createdUsers) created")
            if let first = report.slotIDs.min(), let last = report.slotIDs.max() {
                print("slot ids: \(first)...\(last)")
            }
        }
    }

    private func loadSlots() throws -> [ScheduleSync.Slot] {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            do {
                return try decoder.decode(ScheduleFile.self, from: data).slots
            } catch {
                throw ValidationError("\(file) is not a schedule: \(error)")
            }
        }
        guard let generate else { return [] }
        let begin: Date
        if let start {
            guard let parsed = ISO8601DateFormatter().date(from: start) else {
                throw ValidationError("--start \(start) is not ISO 8601 (e.g. 2026-12-01T09:00:00Z)")
            }
            begin = parsed
        } else {
            let tomorrow = Calendar(identifier: .gregorian).startOfDay(for: Date().addingTimeInterval(86_400))
            begin = tomorrow.addingTimeInterval(9 * 3600)
        }
        return ScheduleSync.generate(
            count: generate, start: begin, length: TimeInterval(minutes * 60), interviewer: interviewer)
    }
}
