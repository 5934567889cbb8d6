import ArgumentParser

/// `leasehold`: one executable, a subcommand per role.
@main
struct Leasehold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exactly-once processing of Telegram callbacks and payment webhooks into PostgreSQL.",
        discussion: """
            Every role reads its configuration from flags or, when a flag is absent, from the \
            environment (POSTGRES_URL, REDIS_URL, LOG_LEVEL, ...). Runbooks/configuration.md lists them all.
            """,
        subcommands: [
            IngressCommand.self, WorkerCommand.self, SupervisorCommand.self, SlotsCommand.self, PaymentsCommand.self,
            MigrateCommand.self,
            DLQCommand.self, StatusCommand.self, StreamsCommand.self, LocalCommand.self,
            NotifierCommand.self,
            LoadTestCommand.self, DemoCommand.self,
            ConsoleCommand.self,
        ]
    )
}
