"""The command tree of tui/cli/: every action's handler gets what it asks for.

Handlers take typed keyword parameters bound by name from their parser's options
(glasskey.tui.cli.dispatch.call); a parameter no option defines would only fail when
that command runs, so it is checked here for all of them at once.
"""

from __future__ import annotations

import inspect

from glasskey.tui.cli import build_parser
from glasskey.tui.cli.parser import Parser, leaves


def test_every_handler_parameter_is_an_option_of_its_parser() -> None:
    root = build_parser()
    seen = 0
    for name, group in root.command_parsers.items():
        for leaf in leaves(group):
            handler = leaf.get_default("handler")
            assert callable(handler), (name, leaf.prog)
            dests = {a.dest for a in leaf._actions} | {"ctx", "vault_dir"}
            wanted = set(inspect.signature(handler).parameters)
            assert wanted <= dests, (leaf.prog, wanted - dests)
            seen += 1
    assert seen >= 40


def test_an_option_of_a_sibling_action_is_named_not_just_unrecognized() -> None:
    root = build_parser()
    ns, extras = root.parse_known_args(["kit", "status", "--duration", "5m"])
    assert extras == ["--duration", "5m"] and ns.shown == "kit status"
    ns, extras = root.parse_known_args(["request", "--duration", "1m", "--", "list"])
    assert ns.cred == "list" and ns.shown == "request"  # after --, 'list' is a name
    ns, _ = root.parse_known_args(["request", "--json", "list", "--all"])
    assert ns.shown == "request list" and ns.include_closed and ns.json


def test_global_options_given_between_command_and_action_are_kept() -> None:
    root = build_parser()
    ns = root.parse_args(["operator", "--vault", "/v", "list", "--json"])
    assert ns.vault == "/v" and ns.json and ns.action == "list"
    assert isinstance(root.command_parsers["operator"], Parser)
    assert not hasattr(root.parse_args(["alerts"]), "vault")  # absent, not None: see parser.py
    assert isinstance(root.parse_args(["alerts", "--wait", "2"]).wait, float)
