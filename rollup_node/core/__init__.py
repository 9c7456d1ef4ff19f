"""The rollup state machine, pure and deterministic: the same blocks give the
same state and state root everywhere. No gRPC, LevelDB, asyncio, clock,
randomness or floats here; heights are the only time."""
