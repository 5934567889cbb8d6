/// The suites that need no server (no PostgreSQL, no Redis): `swift test --filter '\.UnitTests/'`
/// runs them alone, in seconds, and `--filter '<Module>Tests\.UnitTests/'` one module's.
enum UnitTests {}
