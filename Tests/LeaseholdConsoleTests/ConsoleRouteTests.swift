import Foundation
import LeaseholdConsole
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdTesting
import Testing

/// The console's routes in process, over HTTP, against the real servers: login, refusals,
/// escaping, the dry-run-then-confirm actions and their audit records, the lookups.
@Suite("Console: routes", .enabled(if: IntegrationEnvironment.isAvailable))
struct ConsoleRouteTests {
    @Test func everyPageNeedsALoginAndFormsNeedASessionAndItsCSRFToken() async throws {
        let server = try await ConsoleTestServer.start()
        let anonymous = try await server.get("/dead-letters?kind=booking")
        #expect(anonymous.status == 303)
        #expect(anonymous.location == "/login?next=%2Fdead-letters%3Fkind%3Dbooking")
        #expect(try await server.post("/dead-letters/replay", [("scope", "all")]).status == 403)
        #expect(try await server.get("/healthz").status == 200)

        // The wrong token, then a login form without its nonce cookie: refused.
        let page = try await server.get("/login")
        let loginCookie = try ConsoleTestServer.cookie(page.headers, ConsoleSession.loginCookieName)
        let csrf = try ConsoleTestServer.hiddenValue("csrf", in: page.body)
        let wrong = try await server.post(
            "/login", [("csrf", csrf), ("name", "Eve"), ("token", "guess")], cookie: loginCookie)
        #expect(wrong.status == 401)
        #expect(wrong.body.contains("Wrong token."))
        let noNonce = try await server.post(
            "/login", [("csrf", csrf), ("name", "Eve"), ("token", ConsoleTestServer.token)])
        #expect(noNonce.status == 403)

        let good = try await server.post(
            "/login", [("csrf", csrf), ("name", "Ann"), ("token", ConsoleTestServer.token), ("next", "/dead-letters")],
            cookie: loginCookie)
        #expect(good.status == 303)
        #expect(good.location == "/dead-letters")
        let setCookie = try #require(good.headers["Set-Cookie"].first { $0.hasPrefix("\(ConsoleSession.cookieName)=") })
        #expect(setCookie.contains("HttpOnly"))
        #expect(setCookie.contains("SameSite=Strict"))
        let cookie = try ConsoleTestServer.cookie(good.headers, ConsoleSession.cookieName)

        let overview = try await server.get("/", cookie: cookie)
        #expect(overview.status == 200)
        #expect(overview.body.contains("Streams") && overview.body.contains("\(server.keys.prefix)stream:bookings"))
        #expect(overview.headers.first(name: "Content-Security-Policy")?.contains("default-src 'none'") == true)

        let id = try await server.insertDeadLetter(key: "api:csrf-1", payload: #"{"action":"book"}"#)
        let refused = try await server.post(
            "/dead-letters/replay", [("csrf", "forged"), ("scope", "selected"), ("id", "\(id)"), ("confirm", "yes")],
            cookie: cookie)
        #expect(refused.status == 403)
        #expect(refused.body.contains("CSRF token does not match"))
        let status = try await server.postgres.query("SELECT status FROM dead_letters WHERE id = \(id)").single()
            .decode(String.self, at: 0)
        #expect(status == "dead")
        await server.shutdown()
    }

    @Test func payloadsAreShownAsTextNeverAsMarkup() async throws {
        let server = try await ConsoleTestServer.start()
        let cookie = try await server.login(as: "<b>Bob</b>")
        let id = try await server.insertDeadLetter(
            key: "api:<script>x</script>", payload: #"{"note":"<script>alert(1)</script>","user_id":1}"#,
            error: "bad <img src=x onerror=alert(1)>")
        let detail = try await server.get("/dead-letters/\(id)", cookie: cookie)
        #expect(detail.status == 200)
        #expect(!detail.body.contains("<script>alert(1)</script>"))
        #expect(!detail.body.contains("<img src=x"))
        #expect(detail.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(detail.body.contains("&lt;b&gt;Bob&lt;/b&gt;"), "the operator's name is escaped too")
        #expect(detail.body.contains("&quot;user_id&quot; : 1"), "the payload pretty-printed")
        let list = try await server.get("/dead-letters?error=onerror", cookie: cookie)
        #expect(list.body.contains("1 matching, showing 1–1"))
        #expect(!list.body.contains("<img src=x"))
        // Nothing matches: no "showing" and no page links (seen as "0 matching, showing" with
        // "← newer older →" on an empty list).
        let none = try await server.get("/dead-letters?error=no-such-error-\(id)", cookie: cookie)
        #expect(none.body.contains("0 matching</p>"))
        #expect(!none.body.contains("showing"))
        #expect(!none.body.contains("← newer") && !none.body.contains("older →"))
        await server.shutdown()
    }

    @Test func replayAndPurgeShowADryRunFirstThenActAndAreRecorded() async throws {
        let server = try await ConsoleTestServer.start()
        let cookie = try await server.login(as: "Ann")
        let page = try await server.get("/", cookie: cookie)
        let csrf = try ConsoleTestServer.hiddenValue("csrf", in: page.body)
        let first = try await server.insertDeadLetter(
            key: "api:r1", payload: #"{"a":1}"#, error: "slot 7 does not exist")
        let second = try await server.insertDeadLetter(
            key: "api:r2", payload: #"{"a":2}"#, error: "slot 8 does not exist")
        let other = try await server.insertDeadLetter(key: "api:r3", payload: #"{"a":3}"#, error: "timeout")

        // Replay all matching "does not exist": a dry run lists two, nothing changes yet.
        let filter = [("scope", "all"), ("error", "does not exist"), ("csrf", csrf)]
        let dryRun = try await server.post("/dead-letters/replay", filter, cookie: cookie)
        #expect(dryRun.status == 200)
        #expect(dryRun.body.contains("Replay 2 dead letters?"))
        #expect(try await server.redis.send("XLEN", server.keys.stream("bookings")).int == 0)
        let done = try await server.post("/dead-letters/replay", filter + [("confirm", "yes")], cookie: cookie)
        #expect(done.status == 303)
        #expect(try await server.redis.send("XLEN", server.keys.stream("bookings")).int == 2)
        let notice = try await server.get(try #require(done.location), cookie: cookie)
        #expect(notice.body.contains("Ann replayed 2 dead letters"))
        #expect(notice.body.contains("1 matching"), "only the timeout is still dead")
        // Idempotent: the same post again replays nothing.
        let again = try await server.post("/dead-letters/replay", filter + [("confirm", "yes")], cookie: cookie)
        #expect(again.status == 303)
        #expect(try await server.redis.send("XLEN", server.keys.stream("bookings")).int == 2)

        // Purge one selected letter; its page shows who did it.
        let purge = [("scope", "selected"), ("id", "\(other)"), ("csrf", csrf)]
        #expect(
            try await server.post("/dead-letters/purge", purge, cookie: cookie).body.contains("Purge 1 dead letter?"))
        #expect(
            try await server.post("/dead-letters/purge", purge + [("confirm", "yes")], cookie: cookie).status == 303)
        let detail = try await server.get("/dead-letters/\(other)", cookie: cookie)
        #expect(detail.body.contains("purged"))
        #expect(detail.body.contains("selected: \(other)"))
        let replayed = try await server.get("/dead-letters/\(first)", cookie: cookie)
        #expect(replayed.body.contains("replayed as"))
        #expect(replayed.body.contains("all matching error=does not exist"))
        let overview = try await server.get("/", cookie: cookie)
        #expect(overview.body.contains("<td>Ann</td><td>purge</td>"))
        #expect(overview.body.contains("<td>Ann</td><td>replay</td>"))
        let actions = try await server.postgres.query("SELECT count(*) FROM console_actions").single()
            .decode(Int64.self, at: 0)
        #expect(actions == 3)
        _ = second
        await server.shutdown()
    }

    @Test func readOnlyShowsNoActionsAndRefusesThem() async throws {
        let server = try await ConsoleTestServer.start(readOnly: true)
        let cookie = try await server.login()
        let id = try await server.insertDeadLetter(key: "api:ro", payload: "{}")
        let detail = try await server.get("/dead-letters/\(id)", cookie: cookie)
        #expect(!detail.body.contains("Replay…"))
        let csrf = try ConsoleTestServer.hiddenValue("csrf", in: detail.body)
        let refused = try await server.post(
            "/dead-letters/replay", [("csrf", csrf), ("scope", "selected"), ("id", "\(id)"), ("confirm", "yes")],
            cookie: cookie)
        #expect(refused.status == 403)
        #expect(refused.body.contains("read-only"))
        await server.shutdown()
    }

    @Test func paymentsAndMessagesAreFoundByIdUserAndKey() async throws {
        let server = try await ConsoleTestServer.start()
        let cookie = try await server.login()
        try await server.postgres.withConnection { connection in
            let ledger = PaymentLedger()
            _ = try await ledger.upsertPlan(
                code: "month", title: "Month", price: "1990.10", currency: "RUB", days: 30, on: connection)
            _ = try await ledger.createPending(
                paymentID: "pay-1", userID: 42, chatID: 4200, planCode: "month", amount: nil, on: connection)
            _ = try await connection.execute(
                """
                INSERT INTO webhook_log (message_key, event, object_id, status, payload, processed_at)
                VALUES ('yk:payment.succeeded:pay-1', 'payment.succeeded', 'pay-1', 'FAILED', '{"object":{"id":"pay-1"}}', now())
                """)
            _ = try await connection.execute(
                """
                INSERT INTO inbox (message_key, kind, outcome, stream, entry_id)
                VALUES ('tg:77', 'booking', 'booked', 's', '1-0')
                """)
            _ = try await connection.execute(
                """
                INSERT INTO outbox (message_key, chat_id, payload, status, attempts, telegram_message_id, sent_at)
                VALUES ('tg:77', 4200, '{"chat_id":4200,"text":"Booked <b>10:00</b>"}', 'sent', 1, 555, now())
                """)
        }
        let payment = try await server.get("/payments/pay-1", cookie: cookie)
        #expect(payment.status == 200)
        #expect(payment.body.contains("1990.10 RUB") && payment.body.contains("payment.succeeded"))
        let byUser = try await server.get("/lookup?by=user&q=42", cookie: cookie)
        #expect(byUser.location == "/payments?user=42")
        #expect(try await server.get("/payments?user=42", cookie: cookie).body.contains("/payments/pay-1"))
        #expect(try await server.get("/payments/none", cookie: cookie).status == 404)

        #expect(try await server.get("/lookup?by=message&q=77", cookie: cookie).location == "/messages/tg:77")
        let message = try await server.get("/messages/tg:77", cookie: cookie)
        #expect(message.body.contains("<b>booked</b>"))
        #expect(message.body.contains("Booked &lt;b&gt;10:00&lt;/b&gt;") && message.body.contains("555"))
        #expect(try await server.get("/messages/r9", cookie: cookie).location == "/messages/api:r9")
        #expect(try await server.get("/messages/api:r9", cookie: cookie).body.contains("Not processed"))

        // A payment's dead letter shows the payment's webhook_log rows.
        let letter = try await server.insertDeadLetter(
            key: "yk:payment.succeeded:pay-1", kind: "payment", source: "yookassa", payload: #"{"event":"x"}"#)
        let detail = try await server.get("/dead-letters/\(letter)", cookie: cookie)
        #expect(detail.body.contains("Notifications about this payment"))
        #expect(detail.body.contains("/payments/pay-1"))
        await server.shutdown()
    }

    @Test func deadLettersAreFoundByTheUserOrTheChatTheyConcern() async throws {
        let server = try await ConsoleTestServer.start()
        let cookie = try await server.login()
        try await server.postgres.withConnection { connection in
            let ledger = PaymentLedger()
            _ = try await ledger.upsertPlan(
                code: "month", title: "Month", price: "1990.10", currency: "RUB", days: 30, on: connection)
            _ = try await ledger.createPending(
                paymentID: "pay-7", userID: 42, chatID: 4200, planCode: "month", amount: nil, on: connection)
        }
        let booking = try await server.insertDeadLetter(
            key: "tg:1", payload: #"{"action":"book","user_id":42,"chat_id":4200,"slot_id":7}"#)
        let other = try await server.insertDeadLetter(
            key: "tg:2", payload: #"{"action":"book","user_id":43,"chat_id":4300,"slot_id":7}"#)
        let payment = try await server.insertDeadLetter(
            key: "yk:payment.succeeded:pay-7", kind: "yookassa.notification", source: "yookassa",
            payload: #"{"type":"notification","event":"payment.succeeded","object":{"id":"pay-7"}}"#)
        let refund = try await server.insertDeadLetter(
            key: "yk:refund.succeeded:rf-1", kind: "yookassa.notification", source: "yookassa",
            payload: #"{"type":"notification","event":"refund.succeeded","object":{"id":"rf-1","payment_id":"pay-7"}}"#)
        // Payloads that name nobody are still written, with no subject.
        let garbage = try await server.insertDeadLetter(key: "tg:3", payload: "", bytes: [0xFF, 0xFE, 0x00])
        let textID = try await server.insertDeadLetter(key: "tg:4", payload: #"{"user_id":"42","chat_id":1e40}"#)

        let byUser = try await server.get("/dead-letters?user=42", cookie: cookie)
        #expect(byUser.status == 200)
        #expect(byUser.body.contains("3 matching, showing 1–3"), "\(byUser.body)")
        for id in [booking, payment, refund] { #expect(byUser.body.contains("href=\"/dead-letters/\(id)\"")) }
        for id in [other, garbage, textID] { #expect(!byUser.body.contains("href=\"/dead-letters/\(id)\"")) }
        let byChat = try await server.get("/dead-letters?chat=4300", cookie: cookie)
        #expect(byChat.body.contains("1 matching") && byChat.body.contains("href=\"/dead-letters/\(other)\""))
        #expect(try await server.get("/dead-letters?user=42&chat=4200", cookie: cookie).body.contains("1 matching"))
        let detail = try await server.get("/dead-letters/\(booking)", cookie: cookie)
        #expect(detail.body.contains("/dead-letters?user=42&amp;status=all"))
        #expect(detail.body.contains("/dead-letters?chat=4200&amp;status=all"))

        // The same filter from code, and the subject on each letter.
        let letters = try await DeadLetterQuery().list(.init(userID: 42), postgres: server.postgres)
        #expect(Set(letters.map(\.id)) == [booking, payment, refund])
        #expect(letters.first { $0.id == booking }?.chatID == 4200)
        #expect(letters.first { $0.id == payment }?.chatID == nil)
        let nobody = try await DeadLetterQuery().letters(ids: [garbage, textID], postgres: server.postgres)
        #expect(nobody.allSatisfy { $0.userID == nil && $0.chatID == nil })

        // A bad id is a clear 400 that names the field, not an empty list.
        let bad = try await server.get("/dead-letters?user=abc", cookie: cookie)
        #expect(bad.status == 400)
        #expect(bad.body.contains("user: abc is not a user id (a whole number)"))
        await server.shutdown()
    }

    @Test func aStreamIsPausedAndResumedFromTheOverviewAfterAConfirmationAndRecorded() async throws {
        let server = try await ConsoleTestServer.start()
        let cookie = try await server.login(as: "Ann")
        let overview = try await server.get("/", cookie: cookie)
        #expect(overview.body.contains("action=\"/streams/pause\""))
        let csrf = try ConsoleTestServer.hiddenValue("csrf", in: overview.body)
        let pauseKey = server.keys.pause(of: server.keys.stream("yookassa"))

        // Refused without the CSRF token, without a reason, and for what is not a stream.
        #expect(try await server.post("/streams/pause", [("target", "yookassa")], cookie: cookie).status == 403)
        let noReason = try await server.post(
            "/streams/pause", [("target", "yookassa"), ("csrf", csrf)], cookie: cookie)
        #expect(noReason.status == 400)
        let notAStream = try await server.post(
            "/streams/pause", [("target", "payments"), ("reason", "x"), ("csrf", csrf)], cookie: cookie)
        #expect(notAStream.status == 400 && notAStream.body.contains("payments is not a source"))

        // The first post only says what would happen.
        let form = [("target", "yookassa"), ("reason", "INC-9 <refunds>"), ("csrf", csrf)]
        let confirm = try await server.post("/streams/pause", form, cookie: cookie)
        #expect(confirm.status == 200 && confirm.body.contains("Pause yookassa?"))
        #expect(confirm.body.contains("INC-9 &lt;refunds&gt;"))
        #expect(try await server.redis.send("EXISTS", pauseKey).int == 0)
        let done = try await server.post("/streams/pause", form + [("confirm", "yes")], cookie: cookie)
        #expect(done.status == 303)
        #expect(try await server.redis.send("EXISTS", pauseKey).int == 1)
        let paused = try await server.get("/", cookie: cookie)
        #expect(paused.body.contains("by Ann: INC-9 &lt;refunds&gt;"))
        #expect(paused.body.contains("Resume yookassa…"))

        let resume = [("target", "yookassa"), ("csrf", csrf)]
        #expect(try await server.post("/streams/resume", resume, cookie: cookie).body.contains("Resume yookassa?"))
        #expect(try await server.redis.send("EXISTS", pauseKey).int == 1)
        #expect(try await server.post("/streams/resume", resume + [("confirm", "yes")], cookie: cookie).status == 303)
        #expect(try await server.redis.send("EXISTS", pauseKey).int == 0)
        let after = try await server.get("/", cookie: cookie)
        #expect(!after.body.contains("Resume yookassa…"))
        #expect(after.body.contains("<td>Ann</td><td>pause</td><td>yookassa: INC-9 &lt;refunds&gt;</td>"))
        #expect(after.body.contains("<td>Ann</td><td>resume</td><td>yookassa</td>"))
        await server.shutdown()

        // Read-only: no form, and a post is refused.
        let readOnly = try await ConsoleTestServer.start(readOnly: true)
        let viewer = try await readOnly.login()
        let page = try await readOnly.get("/", cookie: viewer)
        #expect(!page.body.contains("action=\"/streams/pause\""))
        let token = try ConsoleTestServer.hiddenValue("csrf", in: page.body)
        let refused = try await readOnly.post(
            "/streams/pause", [("target", "all"), ("reason", "x"), ("csrf", token), ("confirm", "yes")], cookie: viewer)
        #expect(refused.status == 403)
        #expect(
            try await readOnly.redis.send("EXISTS", readOnly.keys.pause(of: readOnly.keys.stream("bookings"))).int == 0)
        await readOnly.shutdown()
    }
}
