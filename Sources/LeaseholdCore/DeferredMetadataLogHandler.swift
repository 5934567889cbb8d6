import Logging

/// A log handler that keeps the metadata set on its logger to itself and hands it to the wrapped
/// handler only when a message is logged.
///
/// swift-log's `StreamLogHandler` formats its whole metadata whenever a key is set. The worker
/// names every entry it processes in its logger's metadata (key, entry ID, attempt), and
/// Hummingbird gives every ingress request a logger carrying the request's ID, so every message
/// and request paid for formatting text that, when nothing goes wrong, is never printed, on the
/// hottest paths there are. Here setting a
/// key is a dictionary write; a message logged carries the logger's metadata merged under its
/// own, so what is printed is unchanged.
public struct DeferredMetadataLogHandler: LogHandler {
    private var wrapped: any LogHandler
    public var metadata: Logger.Metadata = [:]

    public init(wrapping wrapped: any LogHandler) {
        self.wrapped = wrapped
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] ?? wrapped[metadataKey: key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        var merged = metadata
        if let explicit = event.metadata { merged.merge(explicit) { _, explicit in explicit } }
        event.metadata = merged.isEmpty ? nil : merged
        wrapped.log(event: event)
    }
}
