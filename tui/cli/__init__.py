"""The ``glasskey`` command line: a thin front over the core services.

The scripting interface is a contract: every command takes ``--json``
and ``--vault DIR``, before or after its name with the same meaning; commands
that act as an operator take ``--as``, ``--totp`` and ``--passphrase-file`` and
prompt for what is missing when a terminal is attached. Errors are one sentence
on stderr, never a traceback (and, under ``--json``, also ``{"error", "exit"}``
on stdout). Exit codes: 0 ok, 1 refused (policy/authentication), 2 usage,
3 integrity, 4 internal error (a bug: please report it).

Everything printed for a person goes through :func:`core.text.printable`, so a
control character someone typed into a reason or ticket reaches the terminal
as a visible escape, never as a control sequence. Names are checked before
anyone is asked for a passphrase or TOTP code, so a typo does not burn a code.

The package: ``dispatch`` (main), ``parser`` (one parser per command and action, the
shared option groups), ``build`` (the command tree), ``prompts`` and ``actor`` (what is
read from a person; authentication), ``output`` and ``render`` (what is written), and
one module per command group.
"""

from glasskey.tui.cli.build import build_parser
from glasskey.tui.cli.completion import completion_script
from glasskey.tui.cli.dispatch import main, run
from glasskey.tui.cli.docs import DOCS

__all__ = ["DOCS", "build_parser", "completion_script", "main", "run"]
