import LeaseholdTesting
import Testing

/// Every notifier test runs `leasehold notifier` processes against a fake Bot API on loopback and a
/// database of its own. They run one at a time: several measure timing (rate limits, pauses), which
/// a 2-core machine running other stacks beside them would blur.
@Suite("Notifier against a fake Bot API", .serialized, .enabled(if: IntegrationEnvironment.isAvailable))
enum NotifierTests {}
