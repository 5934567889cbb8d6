import ArgumentParser
import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdWire

/// `leasehold payments`: plans and pending payments — what the bot does before it redirects a
/// user to YooKassa's checkout — and what happened to a payment.
struct PaymentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payments",
        abstract: "Manage plans, record pending payments, inspect a payment and its notifications.",
        subcommands: [PaymentPlanCommand.self, CreatePaymentCommand.self, ShowPaymentCommand.self]
    )

    /// Runs `body` in one transaction and closes the client; a refused change is a clean error.
    static func inTransaction<T: Sendable>(
        _ common: CommonOptions, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(configuration: common.postgresConfiguration(role: "payments"), size: 1)
        let result: Result<T, any Error>
        do {
            result = .success(
                try await client.withTransaction(.init(lockTimeout: .seconds(10), statementTimeout: nil), body))
        } catch let error as PostgresTransactionError {
            // A refusal is the operator's mistake: print its reason, not the transaction wrapper.
            result = .failure((error.bodyError as? PaymentLedger.Refusal) ?? error)
        } catch {
            result = .failure(error)
        }
        await client.close()
        return try result.get()
    }

    static func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .iso8601
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}

/// `leasehold payments plan CODE --price 1990.10 --days 30`.
struct PaymentPlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Create or update a subscription plan.",
        discussion: "Changing a plan's price affects new payments only: a payment keeps the amount it was created with."
    )

    @OptionGroup var common: CommonOptions

    @Argument(help: "The plan's code, e.g. month.")
    var code: String

    @Option(help: "Price as a decimal string with at most 2 decimals, e.g. 1990.10.")
    var price: String

    @Option(help: "Days of subscription one payment buys.")
    var days: Int

    @Option(help: "ISO 4217 currency code.")
    var currency: String = "RUB"

    @Option(help: "Title shown to users.")
    var title: String = ""

    func validate() throws {
        guard (1...3650).contains(days) else { throw ValidationError("--days must be 1...3650") }
        guard YooKassaNotification.isAmount(price) else {
            throw ValidationError("--price \(price) must be a positive decimal with at most 2 decimals, e.g. 1990.10")
        }
        guard YooKassaNotification.isCurrency(currency) else {
            throw ValidationError("--currency \(currency) must be a 3-letter code such as RUB")
        }
        guard !code.isEmpty, code.count <= 64 else { throw ValidationError("the plan code must be 1 to 64 characters") }
    }

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.payments")
        let (code, title, price, currency, days) = (code, title, price, currency, days)
        let id = try await PaymentsCommand.inTransaction(common) { connection in
            try await PaymentLedger().upsertPlan(
                code: code, title: title, price: price, currency: currency, days: days, on: connection)
        }
        print("plan \(code) (id \(id)): \(price) \(currency) for \(days) days")
    }
}

/// `leasehold payments create --user 42 --plan month`.
struct CreatePaymentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Record a pending payment, as the bot does before redirecting the user to checkout.",
        discussion: """
            Prints the payment id YooKassa's notifications must carry in object.id. The user is created when \
            missing (--chat-id is where the bot's replies about the payment go). A payment id that already \
            exists is refused and nothing changes.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "The paying user's id.")
    var user: Int64

    @Option(help: "The plan's code.")
    var plan: String

    @Option(help: "YooKassa's payment id (default: a new UUID, as YooKassa's look).")
    var paymentId: String?

    @Option(help: "Amount, when it differs from the plan's price (decimal string, e.g. 1990.10).")
    var amount: String?

    @Option(help: "The user's Telegram chat id, for a user created here (default: none, no bot replies).")
    var chatId: Int64?

    @Flag(help: "Print the payment as JSON.")
    var json = false

    func validate() throws {
        if let paymentId, !YooKassaNotification.isIdentifier(paymentId) {
            throw ValidationError("--payment-id must be 1 to 64 letters, digits, '-' or '_'")
        }
        if let amount, !YooKassaNotification.isAmount(amount) {
            throw ValidationError("--amount \(amount) must be a positive decimal with at most 2 decimals, e.g. 1990.10")
        }
    }

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.payments")
        let (id, user, plan, amount, chat) = (paymentId ?? UUID().uuidString.lowercased(), user, plan, amount, chatId)
        let payment = try await PaymentsCommand.inTransaction(common) { connection in
            try await PaymentLedger().createPending(
                paymentID: id, userID: user, chatID: chat, planCode: plan, amount: amount, on: connection)
        }
        if json {
            try PaymentsCommand.printJSON(payment)
        } else {
            print(
                "payment \(payment.providerPaymentID): \(payment.amount) \(payment.currency), user \(payment.userID), "
                    + "plan \(payment.plan), \(payment.status)")
        }
    }
}

/// `leasehold payments show PAYMENT_ID`.
struct ShowPaymentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a payment, its user's subscription and every notification about it (webhook_log).",
        discussion: "Exits 1 when there is no such payment."
    )

    @OptionGroup var common: CommonOptions

    @Argument(help: "YooKassa's payment id.")
    var paymentId: String

    @Flag(help: "Print as JSON.")
    var json = false

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.payments")
        let id = paymentId
        let report = try await PaymentsCommand.inTransaction(common) { connection in
            try await PaymentReport.load(id, on: connection)
        }
        guard let report else {
            FileHandle.standardError.write(Data("error: no payment \(id)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            try PaymentsCommand.printJSON(report)
            return
        }
        let p = report.payment
        print(
            "payment \(p.providerPaymentID): \(p.status), \(p.amount) \(p.currency) (refunded \(p.refundedAmount)), "
                + "user \(p.userID), plan \(p.plan)\(p.cancellationReason.map { ", canceled: \($0)" } ?? "")")
        if let s = report.subscription {
            print(
                "subscription \(s.id): \(s.status), plan \(s.plan), until \(ISO8601DateFormatter().string(from: s.currentPeriodEnd))"
            )
        } else {
            print("subscription: none")
        }
        print("notifications (\(report.notifications.count)):")
        let formatter = ISO8601DateFormatter()
        for entry in report.notifications {
            print(
                "  \(formatter.string(from: entry.receivedAt))  \(entry.event)  \(entry.objectID)  attempt \(entry.attempt)  "
                    + "\(entry.status)\(entry.error.map { "  \($0)" } ?? "")")
        }
    }
}
