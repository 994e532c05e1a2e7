"""``python -m glasskey.tui.cli``: the same as the ``glasskey`` console script."""

from glasskey.tui.cli.main import run

run()
