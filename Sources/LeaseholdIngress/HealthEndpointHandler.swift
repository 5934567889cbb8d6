import HTTPTypes
import NIOCore
import NIOHTTPTypes
import ServiceLifecycle
import Synchronization

/// Answers `GET /healthz`, and `GET /readyz` while Redis answered a moment ago, on the event loop
/// that read the request: an orchestrator's probe then waits neither for the request handlers'
/// thread nor for the Redis connection, both of which a flood of requests keeps busy (measured
/// under a 6,000/s flood on two cores: a probe through the router took up to 230 ms).
///
/// `/readyz` is answered here only while ``ReadinessCheck`` saw Redis answer within its
/// freshness window and nothing fail since; otherwise the request goes on to the router, whose
/// `/readyz` asks Redis there and then (so "not ready" is never stale). Every other request
/// passes through untouched. HTTP/1.1 answers in order: NIO's pipelining handler, earlier in the
/// pipeline, holds a connection's next request back until the previous answer is written, so an
/// answer from here never overtakes one from the router.
final class HealthEndpointHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private let readiness: ReadinessCheck
    /// The answer body while this handler answers the current request; `nil` while it passes
    /// the request on.
    private var answering: (body: String, close: Bool)?

    init(readiness: ReadinessCheck) {
        self.readiness = readiness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            answering = nil
            if request.method == .get {
                let close = request.headerFields[.connection]?.lowercased() == "close"
                switch request.path {
                case "/healthz": answering = ("ok\n", close)
                case "/readyz" where readiness.isFresh: answering = ("ready\n", close)
                default: break
                }
            }
            if answering == nil { context.fireChannelRead(data) }
        case .body:
            if answering == nil { context.fireChannelRead(data) }
        case .end:
            guard let (body, close) = answering else {
                context.fireChannelRead(data)
                return
            }
            answering = nil
            var fields: HTTPFields = [
                .contentType: "text/plain; charset=utf-8", .contentLength: String(body.utf8.count),
            ]
            if close { fields[.connection] = "close" }
            context.write(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: fields))), promise: nil)
            context.write(wrapOutboundOut(.body(ByteBuffer(string: body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            if close { context.close(promise: nil) }
        }
    }
}

/// Whether Redis answered a moment ago: a `PING` every `interval` through the ingress's Redis
/// client (on its reactor, behind the enqueues, as a request's script would be), for
/// ``HealthEndpointHandler``.
public final class ReadinessCheck: Service, Sendable {
    /// The last PING that was answered, and whether one failed after it.
    private struct State {
        var answeredAt: ContinuousClock.Instant?
        var failedSince = false
    }

    private let state = Mutex(State())
    private let interval: Duration
    /// How long an answered PING vouches for Redis.
    private let freshness: Duration
    private let ping: @Sendable () async throws -> Void

    /// - Parameter ping: one PING, throwing when it is not answered (within the client's timeout).
    public init(
        interval: Duration = .milliseconds(250), freshness: Duration = .seconds(1),
        ping: @escaping @Sendable () async throws -> Void
    ) {
        self.interval = interval
        self.freshness = freshness
        self.ping = ping
    }

    /// Redis answered within the freshness window, and no PING failed since.
    var isFresh: Bool {
        state.withLock { state in
            guard let answeredAt = state.answeredAt, !state.failedSince else { return false }
            return answeredAt.duration(to: .now) < freshness
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let started = ContinuousClock.now
                do {
                    try await self.ping()
                    self.state.withLock {
                        // Vouches from when it was sent: a slow answer is an old one.
                        $0.answeredAt = started
                        $0.failedSince = false
                    }
                } catch {
                    self.state.withLock { $0.failedSince = true }
                }
                try? await Task.sleep(for: self.interval)
            }
        }
    }
}
