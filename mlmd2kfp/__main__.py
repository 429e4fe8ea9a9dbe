"""`python -m mlmd2kfp` runs the CLI."""

from .cli import main

main()
