import LeaseholdCore
import Logging
import Synchronization
import Testing

extension UnitTests {
    @Suite("Deferred metadata: what is printed is unchanged")
    struct DeferredMetadataLogHandlerTests {
        /// Keeps what reaches it.
        final class Capture: Sendable {
            let events = Mutex<[(level: Logger.Level, message: String, metadata: Logger.Metadata?)]>([])
        }

        struct CapturingHandler: LogHandler {
            let capture: Capture
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .debug
            var metadataProvider: Logger.MetadataProvider?

            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }

            func log(event: LogEvent) {
                var all = metadata
                if let explicit = event.metadata { all.merge(explicit) { _, explicit in explicit } }
                capture.events.withLock { $0.append((event.level, "\(event.message)", all.isEmpty ? nil : all)) }
            }
        }

        @Test func aMessageCarriesTheLoggersMetadataUnderItsOwnAndTheLevelIsTheWrappedOnes() {
            let capture = Capture()
            var wrapped = CapturingHandler(capture: capture)
            wrapped.metadata = ["process": "worker-1"]
            wrapped.logLevel = .info
            var logger = Logger(label: "test") { _ in DeferredMetadataLogHandler(wrapping: wrapped) }
            logger[metadataKey: "entry"] = "1-0"
            logger[metadataKey: "key"] = "api:r1"
            #expect(logger[metadataKey: "entry"] == "1-0")
            #expect(logger[metadataKey: "process"] == "worker-1", "the wrapped handler's own metadata shows through")
            #expect(logger.logLevel == .info)

            logger.debug("below the level")
            logger.info("processed", metadata: ["key": "overridden", "outcome": "booked"])
            logger.warning("plain")
            let events = capture.events.withLock { $0 }
            #expect(events.map(\.message) == ["processed", "plain"])
            #expect(
                events.first?.metadata
                    == ["process": "worker-1", "entry": "1-0", "key": "overridden", "outcome": "booked"])
            #expect(events.last?.metadata == ["process": "worker-1", "entry": "1-0", "key": "api:r1"])
        }
    }
}
