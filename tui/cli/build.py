"""The whole command tree: the global options and every command module's parsers."""

from __future__ import annotations

from collections.abc import Callable

from glasskey.tui.cli import (
    audit,
    checkout,
    completion,
    credentials,
    emergency,
    migrate,
    misc,
    onboarding,
    operators,
    outage,
    reviews,
    rotation,
)
from glasskey.tui.cli.docs import DOCS
from glasskey.tui.cli.parser import Commands, Parser

#: The order ``glasskey --help`` lists the commands in.
ORDER = ("init", "operator", "cred", "request", "approve", "cancel", "reveal", "checkin",
         "extend", "deny", "reconcile", "apply", "review", "onboard", "kit", "alerts", "audit",
         "report", "demo", "completion", "notify", "relay", "drill", "open", "migrate")

ADDERS: dict[str, Callable[[Commands], None]] = {
    **misc.PARSERS, **operators.PARSERS, **credentials.PARSERS, **checkout.PARSERS,
    **rotation.PARSERS, **reviews.PARSERS, **onboarding.PARSERS, **emergency.PARSERS,
    **audit.PARSERS, **completion.PARSERS, **outage.PARSERS, **migrate.PARSERS,
}
assert set(ADDERS) == set(ORDER) and set(DOCS) <= set(ORDER), set(ADDERS) ^ set(ORDER)


def build_parser() -> Parser:
    parser = Parser(prog="glasskey", description="Break-glass custody: a dual-control vault. "
                    "With no command, opens the terminal UI. --vault and --json may come "
                    "before or after the command.")
    parser.add_argument("--vault", dest="g_vault", metavar="DIR|URL", help="vault directory or "
                        "postgresql:// URL (default: $GLASSKEY_VAULT, then the user data "
                        "directory)")
    parser.add_argument("--json", dest="g_json", action="store_true",
                        help="machine-readable output on stdout")
    parser.add_argument("--version", action="version", version=f"glasskey {misc.version()}")
    parser.add_argument("--open", metavar="REQ", help="open the TUI on a request after unlock")
    cmds = Commands(parser, DOCS)
    for name in ORDER:
        ADDERS[name](cmds)
    return parser
