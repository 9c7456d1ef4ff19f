"""The sequencer's pure core: admission rules and the pending pool. No gRPC,
LevelDB, asyncio, clock or randomness here."""
