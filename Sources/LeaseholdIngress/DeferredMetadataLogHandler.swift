import Logging

/// A log handler that keeps the metadata set on its logger to itself and hands it to the wrapped
/// handler only when a message is logged.
///
/// Hummingbird gives every request a logger carrying the request's ID as metadata. swift-log's
/// `StreamLogHandler` formats its whole metadata whenever a key is set, so with it every request
/// paid for formatting text that, at the default level, is never printed: about a tenth of the
/// request handlers' CPU. Here setting a key is a dictionary write; a message logged carries the
/// logger's metadata merged under its own, so what is printed is unchanged.
struct DeferredMetadataLogHandler: LogHandler {
    private var wrapped: any LogHandler
    var metadata: Logger.Metadata = [:]

    init(wrapping wrapped: any LogHandler) {
        self.wrapped = wrapped
    }

    var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) {
        var merged = self.metadata
        if let metadata { merged.merge(metadata) { _, explicit in explicit } }
        wrapped.log(
            level: level, message: message, metadata: merged.isEmpty ? nil : merged, source: source, file: file,
            function: function, line: line)
    }
}
