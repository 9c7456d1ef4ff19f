"""The devnet's web explorer (`python -m devnet.explorer`): blocks, transactions,
bundles and their lifecycle, options, liens and accounts, read only through the
public gRPC APIs of the sequencer and the nodes, plus the devnet's own manifest
and fault files for the process list and the faults in force."""
