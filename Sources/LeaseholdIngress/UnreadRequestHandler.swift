import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Bounds what a client can make an ingress connection wait for, below the router.
///
/// - **A body that never finishes.** Once a request's head has arrived, its body must be
///   complete within `bodyTimeout` (`LEASEHOLD_INGRESS_BODY_TIMEOUT_SECONDS`). Otherwise the
///   connection is answered 408 (if no answer has started yet) and closed: a slow-loris that
///   trickles one byte a second would otherwise hold the connection, and the handler awaiting its
///   body, for as long as it liked. (Hummingbird's idle timeout, also set, only fires when
///   *nothing* arrives: every trickled body part resets it.)
/// - **An answer before the body was read.** A request refused from its headers (401, 403, 413
///   from `Content-Length`, 415, 408) would otherwise leave Hummingbird reading and discarding
///   the rest of the body — 10 MB of it, or forever. Such an answer gets `Connection: close` and
///   the connection is closed once it is written (RFC 9112 §9.6).
///
/// It sits after HTTP parsing (``HTTPRequestPart``s in, ``HTTPResponsePart``s out), one per connection.
final class UnreadRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let bodyTimeout: TimeAmount
    /// Request heads read, request ends read, response heads and ends written: response n
    /// answers request n (HTTP/1.1 answers in order).
    private var requestHeads = 0
    private var requestEnds = 0
    private var responseHeads = 0
    private var responseEnds = 0
    private var closeAfterResponse = false
    /// When the head of a request whose end has not been read yet arrived.
    private var headArrived: NIODeadline?
    private var deadline: Scheduled<Void>?

    init(bodyTimeout: TimeAmount) {
        self.bodyTimeout = bodyTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestHeads += 1
            headArrived = .now()
        case .body:
            break
        case .end:
            requestEnds += 1
            headArrived = nil
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    /// The clock starts when a head arrives, but the timer is only set once a read ends with
    /// that request still incomplete: a request that arrives whole (nearly every one) costs no
    /// timer at all.
    func channelReadComplete(context: ChannelHandlerContext) {
        if let headArrived, deadline == nil {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(deadline: headArrived + bodyTimeout) {
                let (handler, context) = loopBound.value
                handler.bodyTimedOut(context: context)
            }
        }
        context.fireChannelReadComplete()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    private func bodyTimedOut(context: ChannelHandlerContext) {
        deadline = nil
        guard requestEnds < requestHeads, context.channel.isActive else { return }
        if responseHeads == responseEnds {
            // No answer in progress: say why before closing.
            let message = "request body not received within \(bodyTimeout.nanoseconds / 1_000_000_000) s\n"
            let head = HTTPResponse(
                status: .requestTimeout,
                headerFields: [
                    .connection: "close", .contentType: "text/plain; charset=utf-8",
                    .contentLength: String(message.utf8.count),
                ])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(ByteBuffer(string: message))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.close(promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            responseHeads += 1
            // This answers request number `responseHeads`; has its body been read to the end?
            if requestEnds < responseHeads {
                closeAfterResponse = true
                head.headerFields[.connection] = "close"
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            responseEnds += 1
            if closeAfterResponse {
                context.writeAndFlush(data, promise: promise)
                context.close(promise: nil)
            } else {
                context.write(data, promise: promise)
            }
        }
    }
}
