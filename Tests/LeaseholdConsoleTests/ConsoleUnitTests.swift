import Foundation
import LeaseholdConsole
import LeaseholdQueue
import Testing

extension UnitTests {
    /// The console's parts that need no server: sessions, CSRF tokens, forms, keys, the chart.
    @Suite("Console: sessions, forms, chart")
    struct ConsoleUnitTests {
        let signer = ConsoleSigner(token: "s3cret")

        @Test func aSessionCookieRoundTripsAndAForgedOrExpiredOneIsRefused() throws {
            let session = signer.newSession(name: "Ann <ops>", lifetime: .seconds(60))
            let value = signer.cookieValue(session)
            let read = try #require(signer.session(fromCookie: value))
            #expect(read.name == "Ann <ops>")
            #expect(read.nonce == session.nonce)
            // Another name under the same signature, a signature from another token, an expired session.
            var parts = value.split(separator: ".").map(String.init)
            parts[2] = "QWRtaW4"  // "Admin"
            #expect(signer.session(fromCookie: parts.joined(separator: ".")) == nil)
            #expect(ConsoleSigner(token: "other").session(fromCookie: value) == nil)
            #expect(signer.session(fromCookie: value, now: Date().addingTimeInterval(120)) == nil)
            #expect(signer.session(fromCookie: "garbage") == nil)
        }

        @Test func csrfTokensAreBoundToTheSessionAndTheTokenIsComparedExactly() {
            let one = signer.newSession(name: "a", lifetime: .seconds(60))
            let two = signer.newSession(name: "a", lifetime: .seconds(60))
            #expect(signer.csrfToken(for: one) != signer.csrfToken(for: two))
            #expect(signer.matches(signer.csrfToken(for: one), signer.csrfToken(for: one)))
            #expect(!signer.matches("bad", signer.csrfToken(for: one)))
            #expect(!signer.matches(nil, signer.csrfToken(for: one)))
            #expect(signer.isToken("s3cret"))
            #expect(!signer.isToken("s3cret "))
            #expect(!signer.isToken(""))
        }

        @Test func formsKeepRepeatedFieldsAndDecodePercentAndPlus() {
            let form = ConsoleForm("id=3&id=4&error=slot+taken%3A%20x&empty=&csrf=abc")
            #expect(form.all("id") == ["3", "4"])
            #expect(form["error"] == "slot taken: x")
            #expect(form["empty"] == nil)
            #expect(ConsoleForm(ConsoleForm.encode([("q", "a b&c=d")]))["q"] == "a b&c=d")
        }

        @Test func lookupInputsBecomeInboxKeys() {
            #expect(MessageLookup.key(for: "tg:42") == "tg:42")
            #expect(MessageLookup.key(for: "42") == "tg:42")
            #expect(MessageLookup.key(for: "r-1") == "api:r-1")
            #expect(MessageLookup.key(for: "yk:payment.succeeded:p1") == "yk:payment.succeeded:p1")
        }

        @Test func theChartPlotsBacklogAndThroughputOrSaysThereAreNoSamples() {
            let now = Date()
            let empty = ConsoleChart.svg([], now: now)
            #expect(empty.contains("No samples in the last hour"))
            let samples = (0..<10).map { (index: Int) -> ThroughputSampler.Sample in
                let seconds: Double = now.timeIntervalSince1970 - Double(600 - index * 60)
                return ThroughputSampler.Sample(
                    at: Int64(seconds * 1000), backlog: Int64(index * 10), processed: Int64(index), intervalSeconds: 30)
            }
            let chart = ConsoleChart.svg(samples, now: now)
            #expect(chart.hasPrefix("<svg"))
            #expect(chart.contains("<polygon points=") && chart.contains("<polyline points="))
            #expect(chart.contains(">90</text>"), "the backlog scale's top is the largest backlog")
            #expect(chart.contains(">18/min</text>"), "9 processed in 30 s is 18 per minute")
        }
    }
}
