"""The parser machinery: one argparse parser per command and per action.

``glasskey operator suspend NAME --with NAME2`` is parsed by the parser of
``operator suspend`` alone, so argparse itself enforces what that action needs
(``required=True``, required positionals, mutually exclusive groups) and refuses what
belongs to another action. :func:`refuse_extras` turns argparse's "unrecognized
arguments" into the clearer "--roles does not apply to 'operator list'" when the
option belongs to a sibling action.

Shared option groups are defined once, as parent parsers (:class:`Commands`):
``--json``/``--vault``/``--wait`` on every command and action, ``--as``/``--totp``/
``--passphrase-file`` where an operator acts, ``--with ...`` where a second one
countersigns. Their defaults are ``SUPPRESS`` so that a value given between the
command and its action (``operator --json list``) is not overwritten by the
action's parser.

``request CRED|list|clear`` and ``review ID|list`` take a name *or* a keyword in the
same place, which argparse subparsers cannot express: such a command's parser
*routes* (:meth:`Parser.parse_known_args`) to the keyword's own parser when the first
word is a keyword, and parses the name form itself otherwise.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from glasskey.core.api import UsageError

#: A command handler: typed keyword parameters, bound by name from the parsed options
#: (see glasskey.tui.cli.dispatch.call); ``ctx`` is the command's :class:`Ctx`.
Handler = Callable[..., int]


class CliUsage(Exception):
    """argparse errors, turned into exit code 2 with one sentence."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions (main prints one sentence, exit 2),
    without abbreviations, and able to route ``request list`` to its own parser."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: '--totp-secret' must never silently mean '--totp-secret-file',
        # and a prefix that is valid today may become ambiguous tomorrow.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        #: The root's documented commands (DOCS), and all of its commands.
        self.subcommands: dict[str, Parser] = {}
        self.command_parsers: dict[str, Parser] = {}
        #: Keyword -> its parser, for a command whose first word is a name or a keyword.
        self.routes: dict[str, Parser] = {}

    def error(self, message: str) -> NoReturn:
        raise CliUsage(f"{self.prog}: {message}")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.routes and args is not None:
            words = list(args)
            at = self._first_word(words)
            if at is not None and words[at] in self.routes:
                return self.routes[words[at]].parse_known_args(
                    words[:at] + words[at + 1:], namespace)
        return super().parse_known_args(args, namespace)

    def _first_word(self, words: list[str]) -> int | None:
        """Index of the first positional word, skipping options and their values; None
        when there is none before ``--`` (after it, 'list' is a name, not the keyword)."""
        known = {opt: act for p in (self, *self.routes.values())
                 for opt, act in p._option_string_actions.items()}
        i = 0
        while i < len(words):
            word = words[i]
            if word == "--":
                return None
            if word.startswith("-") and word != "-":
                act = known.get(word)
                i += 2 if act is not None and act.nargs != 0 else 1
                continue
            return i
        return None


def wait_seconds(raw: str) -> float:
    """``--wait SECONDS``: a finite number of seconds in (0, 3600]."""
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not (math.isfinite(wait) and 0 < wait <= 3600):
        raise argparse.ArgumentTypeError(f"wants a number of seconds above 0 and at most "
                                         f"3600, not {raw!r}")
    return wait


def nonblank(raw: str) -> str:
    """Text that says something: refused before anyone spends a TOTP code on it."""
    if not raw.strip():
        raise argparse.ArgumentTypeError("must not be blank")
    return raw


def _common() -> Parser:
    common = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("--vault", metavar="DIR|URL", help="vault directory or "
                        "postgresql:// URL (default: $GLASSKEY_VAULT, then the user data "
                        "directory)")
    common.add_argument("--wait", metavar="SECONDS", type=wait_seconds,
                        help="how long to wait for another process's hold on the vault lock "
                        "(default 10)")
    return common


def _passphrase(parser: Parser) -> Parser:
    parser.add_argument("--passphrase-file", metavar="PATH",
                        help="file holding the passphrase ('-' = first line of stdin)")
    return parser


def _actor() -> Parser:
    actor = Parser(add_help=False)
    actor.add_argument("--as", dest="as_", metavar="NAME", help="the acting operator")
    actor.add_argument("--totp", metavar="CODE", help="the acting operator's TOTP code")
    return _passphrase(actor)


def _second() -> Parser:
    second = Parser(add_help=False)
    second.add_argument("--with", dest="with_", metavar="NAME",
                        help="the second operator, who countersigns")
    second.add_argument("--with-totp", metavar="CODE")
    second.add_argument("--with-passphrase-file", metavar="PATH")
    return second


class Commands:
    """What the command modules add their parsers to, with the shared option groups."""

    def __init__(self, root: Parser, docs: dict[str, tuple[str, str]]) -> None:
        self.root = root
        self.docs = docs
        self.sub = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
        self.common = _common()
        #: ``--as``, ``--totp``, ``--passphrase-file``: the acting operator.
        self.actor = _actor()
        #: ``--with``, ``--with-totp``, ``--with-passphrase-file``: the countersigner.
        self.second = _second()
        #: ``--passphrase-file`` alone (``operator totp-reset``: no TOTP to give).
        self.passphrase = _passphrase(Parser(add_help=False))

    def command(self, name: str, *parents: Parser, handler: Handler | None = None,
                help: str | None = None) -> Parser:
        """A command; with a DOCS entry its help has a description and an example and it
        is offered by shell completion."""
        if name in self.docs:
            description, example = self.docs[name]
            p = self.sub.add_parser(name, parents=[self.common, *parents],
                                    help=description.split(";")[0].split(". ")[0].rstrip("."),
                                    description=description, epilog=f"example:\n  {example}")
            self.root.subcommands[name] = p
        else:
            p = self.sub.add_parser(name, parents=[self.common, *parents], help=help)
        self.root.command_parsers[name] = p
        p.set_defaults(shown=name, handler=handler)
        return p

    def actions(self, group: Parser, dest: str = "action"
                ) -> argparse._SubParsersAction[Parser]:
        """The actions of ``group`` (``operator list``, ``operator add`` ...); one is
        required."""
        return group.add_subparsers(dest=dest, required=True, parser_class=Parser)

    def action(self, actions: argparse._SubParsersAction[Parser], name: str, *parents: Parser,
               handler: Handler, help: str) -> Parser:
        p = actions.add_parser(name, parents=[self.common, *parents], help=help,
                               description=help)
        p.set_defaults(shown=p.prog.split(" ", 1)[1], handler=handler)
        return p

    def route(self, group: Parser, keyword: str, *parents: Parser, handler: Handler,
              help: str) -> Parser:
        """``group KEYWORD ...`` parsed by its own parser (see :class:`Parser`)."""
        p = Parser(prog=f"{group.prog} {keyword}", parents=[self.common, *parents],
                   description=help)
        p.set_defaults(shown=p.prog.split(" ", 1)[1], handler=handler)
        group.routes[keyword] = p
        return p


def leaves(parser: Parser) -> Iterator[Parser]:
    """Every parser that parses some form of this command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for routed in parser.routes.values():
        yield from leaves(routed)
    for action in subs:
        for child in action.choices.values():
            yield from leaves(child)


def positionals(parser: Parser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


def refuse_extras(root: Parser, ns: argparse.Namespace, extras: list[str]) -> NoReturn:
    """Say why arguments were left over: an option of a sibling action "does not apply"
    here (exit 2), as does a positional argument to an action that takes none. An option
    silently ignored would be an option someone relied on."""
    group = root.command_parsers.get(getattr(ns, "command", None) or "")
    shown = getattr(ns, "shown", None)
    if group is not None and isinstance(shown, str):
        siblings = list(leaves(group))
        word = extras[0]
        if word.startswith("-") and word != "-":
            option = word.split("=", 1)[0]
            if any(option in p._option_string_actions for p in siblings):
                raise UsageError(f"{option} does not apply to '{shown}'")
        else:
            chosen = [p for p in siblings if p.prog == f"{root.prog} {shown}"]
            dest = next((a.dest for p in siblings for a in positionals(p)), None)
            if dest and chosen and not positionals(chosen[0]):
                raise UsageError(f"'{shown}' takes no {dest} argument")
    root.error(f"unrecognized arguments: {' '.join(extras)}")
