"""The shared sequencer: admits submissions, orders them into hash-chained
blocks, stores them durably and streams them to rollup nodes."""
