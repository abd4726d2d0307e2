"""`python -m kdbench`: the same thin entry point as the `kdbench` console script."""

from kdbench.cli import main

main()
