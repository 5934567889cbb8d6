import Hummingbird
import NIOCore

/// The per-request context: Hummingbird's core storage plus the peer address (the YooKassa
/// allowlist needs it).
public struct IngressRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}
