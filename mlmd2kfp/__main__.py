"""`python -m mlmd2kfp` and the `mlmd2kfp` console script: the CLI. Ctrl-C while Python still imports it is one
line and exit 130 too, like Ctrl-C at any later point (`cli.main`), never a traceback."""

import sys


def run() -> None:
    """Import the CLI and run it."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("Error: stopped by SIGINT during start-up; nothing was done\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
