"""`python -m reconciler` runs the `mirror` command."""

from reconciler.cli import mirror_main

mirror_main()
