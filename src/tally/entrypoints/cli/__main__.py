"""``python -m tally.entrypoints.cli``: the same as the ``tally`` command."""

from tally.entrypoints.cli import main

main()
