"""A rollup node: follows the sequencer's block stream, applies its rollup's
entries with the pure state machine in rollup_node/core to LevelDB, and serves
balances, receipts, state roots and status over gRPC."""
