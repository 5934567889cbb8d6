import LeaseholdTesting
import Testing

/// Every system test starts a whole stack of OS processes; on a 2-core machine running them one
/// at a time keeps each test's timing meaningful (the unit and wrapper suites still run in
/// parallel beside them).
@Suite("System tests, one stack at a time", .serialized, .enabled(if: IntegrationEnvironment.isAvailable))
enum SystemTests {}
