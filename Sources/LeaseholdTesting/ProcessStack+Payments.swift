import Foundation
import NIOHTTP1

/// YooKassa notifications and payments for a ``ProcessStack``.
extension ProcessStack {
    /// The ingress environment that lets the tests' loopback address post YooKassa notifications.
    public static let loopbackYooKassaSource = ["LEASEHOLD_YOOKASSA_ALLOWED_CIDRS": "127.0.0.1/32,::1"]

    /// A notification body as YooKassa sends it.
    public static func yookassaBody(
        event: String, objectID: String, amount: String = "1990.10", paymentID: String? = nil
    ) -> String {
        let status =
            switch event {
            case "payment.waiting_for_capture": "waiting_for_capture"
            case "payment.canceled": "canceled"
            default: "succeeded"
            }
        let refunded = paymentID.map { #","payment_id":"\#($0)""# } ?? ""
        return """
            {"type":"notification","event":"\(event)","object":{"id":"\(objectID)","status":"\(status)"\(refunded),\
            "amount":{"value":"\(amount)","currency":"RUB"},"created_at":"2026-11-22T10:00:00.000Z","paid":true,\
            "metadata":{"source":"leasehold-tests"}}}
            """
    }

    /// `POST /yookassa/webhook`.
    public func yookassaNotification(
        event: String, objectID: String, amount: String = "1990.10", paymentID: String? = nil, ingress: Int = 0,
        forwardedFor: String? = nil
    ) async throws -> HTTPResult {
        var headers = [("Content-Type", "application/json")]
        if let forwardedFor { headers.append(("X-Forwarded-For", forwardedFor)) }
        return try await request(
            .POST, "/yookassa/webhook", ingress: ingress, headers: headers,
            body: Self.yookassaBody(event: event, objectID: objectID, amount: amount, paymentID: paymentID))
    }

    /// `leasehold payments plan` then `leasehold payments create`, as the bot would.
    public func createPayment(
        _ paymentID: String, user: Int64, chat: Int64? = nil, plan: String = "month", price: String = "1990.10",
        days: Int = 30
    ) async throws {
        let planResult = try await LeaseholdExecutable.run(
            ["payments", "plan", plan, "--price", price, "--days", String(days), "--title", "Месяц"],
            in: directory, environment: environment)
        guard planResult.status == 0 else { throw TestSetupError("payments plan failed:\n\(planResult.output)") }
        var arguments = ["payments", "create", "--user", String(user), "--plan", plan, "--payment-id", paymentID]
        if let chat { arguments += ["--chat-id", String(chat)] }
        let created = try await LeaseholdExecutable.run(arguments, in: directory, environment: environment)
        guard created.status == 0 else { throw TestSetupError("payments create failed:\n\(created.output)") }
    }

    /// webhook_log statuses of the notifications about `objectID`, counted.
    public func webhookLog(objectID: String) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await postgres.query(
            "SELECT status, count(*) FROM webhook_log WHERE object_id = \(objectID) GROUP BY status")
        {
            let (status, count) = try row.decode(String.self, Int64.self)
            counts[status] = Int(count)
        }
        return counts
    }
}
