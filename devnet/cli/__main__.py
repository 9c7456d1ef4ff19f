"""`python -m devnet.cli`: the same as the `devnet` command."""

from devnet.cli import main

main()
