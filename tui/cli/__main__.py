"""``python -m glasskey.tui.cli``: the same as the ``glasskey`` console script."""

from glasskey.tui.cli.dispatch import run

run()
