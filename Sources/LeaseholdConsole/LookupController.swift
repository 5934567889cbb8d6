import Foundation
import Hummingbird
import LeaseholdDomain
import LeaseholdPostgres

/// The lookups: `/lookup` (the header's search box), `/payments?user=<id>`, `/payments/<id>` (what
/// `leasehold payments show` prints) and `/messages/<key>` (a message by inbox key).
struct LookupController: Sendable {
    let pages: ConsolePages
    let postgres: PostgresClient

    func register(with router: Router<BasicRequestContext>) {
        router.get("lookup") { request, _ in lookup(request) }
        router.get("payments") { request, _ in
            await pages.page(request) { viewer in try await payments(request, viewer) }
        }
        router.get("payments/:id") { request, context in
            let id = context.parameters.get("id").flatMap { $0.removingPercentEncoding } ?? ""
            return await pages.page(request) { viewer in try await payment(id, viewer) }
        }
        router.get("messages/:key") { request, context in
            let key = context.parameters.get("key").flatMap { $0.removingPercentEncoding } ?? ""
            return await pages.page(request) { viewer in try await message(key, viewer) }
        }
    }

    func lookup(_ request: Request) -> Response {
        let query = ConsoleForm(request.uri.query ?? "")
        guard let text = query["q"]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else {
            return ConsolePages.redirect("/")
        }
        switch query["by"] {
        case "user": return ConsolePages.redirect("/payments?" + ConsoleForm.encode([("user", text)]))
        case "message":
            return ConsolePages.redirect("/messages/" + ConsolePages.pathComponent(MessageLookup.key(for: text)))
        default: return ConsolePages.redirect("/payments/" + ConsolePages.pathComponent(text))
        }
    }

    func payments(_ request: Request, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        guard let user = request.uri.queryParameters.get("user").flatMap({ Int64($0) }) else {
            return pages.problem("Bad user id", "user must be a number.", status: .badRequest, viewer: viewer)
        }
        let ids = try await PaymentReport.paymentIDs(ofUser: user, on: postgres)
        let context: [String: Any] = [
            "userID": user, "ids": ids.map { ["id": $0, "path": ConsolePages.pathComponent($0)] },
        ]
        return ConsolePages.html(
            pages.renderer.page("payments", title: "Payments of user \(user)", viewer: viewer, context))
    }

    func payment(_ id: String, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        guard let report = try await postgres.withConnection({ try await PaymentReport.load(id, on: $0) }) else {
            return pages.problem("Not found", "No payment \(id).", status: .notFound, viewer: viewer)
        }
        let p = report.payment
        let context: [String: Any] = [
            "providerPaymentID": p.providerPaymentID, "status": p.status,
            "cancellationReason": p.cancellationReason as Any, "amount": p.amount, "currency": p.currency,
            "refundedAmount": p.refundedAmount, "userID": p.userID, "plan": p.plan,
            "subscription": report.subscription.map { s -> [String: Any] in
                [
                    "id": s.id, "status": s.status, "plan": s.plan,
                    "until": ConsoleRenderer.time(s.currentPeriodEnd),
                ]
            } as Any,
            "notifications": ConsolePages.notificationRows(report.notifications),
        ]
        return ConsolePages.html(pages.renderer.page("payment", title: "Payment \(id)", viewer: viewer, context))
    }

    func message(_ input: String, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        let key = MessageLookup.key(for: input)
        if key != input { return ConsolePages.redirect("/messages/" + ConsolePages.pathComponent(key)) }
        let found = try await MessageLookup.load(key, postgres: postgres)
        let context: [String: Any] = [
            "key": key,
            "inbox": found.inbox.map { row -> [String: Any] in
                [
                    "processedAt": ConsoleRenderer.time(row.processedAt), "kind": row.kind, "outcome": row.outcome,
                    "stream": row.stream ?? "", "entryID": row.entryID ?? "",
                    "interviewID": row.interviewID.map(String.init) ?? "–",
                ]
            } as Any,
            "outbox": found.outbox.map { row -> [String: Any] in
                [
                    "id": row.id, "chatID": row.chatID.map(String.init) ?? "", "status": row.status,
                    "attempts": row.attempts, "sentAt": ConsoleRenderer.time(row.sentAt),
                    "telegramMessageID": row.telegramMessageID.map(String.init) ?? "",
                    "lastError": row.lastError ?? "", "text": row.text ?? "",
                ]
            },
            "deadLetters": found.deadLetterIDs.map(String.init),
        ]
        return ConsolePages.html(pages.renderer.page("message", title: "Message \(key)", viewer: viewer, context))
    }
}
