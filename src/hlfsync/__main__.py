"""`python -m hlfsync` runs the command line."""

from hlfsync.cli import main

main()
