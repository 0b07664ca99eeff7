// Hex literals, codec checks and decoder fuzzing live in the shared test-support target.
@_exported import DCGKATestSupport
