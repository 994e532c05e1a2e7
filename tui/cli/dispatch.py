"""Dispatch: parse the command line, open the vault, call the command's handler.

Handlers declare typed keyword parameters named after their options' ``dest``;
:func:`call` binds them from the parsed options, so no handler sees the argparse
namespace. ``ctx`` (the open vault, ``--json``, the operators' factors) and
``vault_dir`` are bound by :func:`main` itself.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from glasskey.core.api import GlasskeyError, InternalError, UsageError, Vault, fsutil
from glasskey.tui.cli.actor import Actor, Ctx
from glasskey.tui.cli.build import build_parser
from glasskey.tui.cli.output import note, out_json
from glasskey.tui.cli.parser import CliUsage, Handler, Parser, refuse_extras
from glasskey.tui.environment import ClientSettings, default_vault_dir
from glasskey.tui.hardening import harden_process

#: How long to wait for another process's hold on the vault lock without --wait.
DEFAULT_LOCK_WAIT = 10.0


def parse(parser: Parser, argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; anything wrong with it is a UsageError (exit 2)."""
    try:
        ns, extras = parser.parse_known_args(argv)
        if extras:
            refuse_extras(parser, ns, extras)
    except CliUsage as exc:
        raise UsageError(str(exc)) from None
    return ns


def vault_dir(ns: argparse.Namespace) -> str | None:
    """--vault before the command means what it means after it."""
    after = getattr(ns, "vault", None)
    if ns.g_vault and after and Path(ns.g_vault) != Path(after):
        raise UsageError("--vault is given twice with different directories")
    return after or ns.g_vault  # type: ignore[no-any-return]


def call(handler: Handler, ns: argparse.Namespace, bound: dict[str, object]) -> int:
    """``handler`` with each parameter taken from ``bound`` or else from the option of
    the same ``dest``; a parameter its parser does not define is a bug (exit 4)."""
    kwargs: dict[str, object] = {}
    for name, param in inspect.signature(handler).parameters.items():
        if name in bound:
            kwargs[name] = bound[name]
        elif hasattr(ns, name):
            kwargs[name] = getattr(ns, name)
        elif param.default is inspect.Parameter.empty:
            raise InternalError(f"the handler {handler.__name__} wants {name!r}, which its "
                                "parser does not define")
    return int(handler(**kwargs))


def context(ns: argparse.Namespace, vault: Vault, as_json: bool) -> Ctx:
    def opt(dest: str) -> str | None:
        return getattr(ns, dest, None)

    return Ctx(vault, as_json, Actor(opt("as_"), opt("totp"), opt("passphrase_file")),
               Actor(opt("with_"), opt("with_totp"), opt("with_passphrase_file")))


def main(argv: Sequence[str] | None = None) -> int:
    # Before any passphrase, key or secret is in memory: no core file, not dumpable.
    harden_process()
    from glasskey.tui import envguard

    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    try:
        ns = parse(build_parser(), argv)
        root = vault_dir(ns)
        as_json = bool(getattr(ns, "json", False) or ns.g_json)
        json_mode = json_mode or as_json
        # Before anything imports Textual (tui/envguard.py says why). Only the TUI
        # loads Textual, so only the TUI needs (and warns about) the scrub.
        if ns.command in (None, "demo", "open"):
            envguard.scrub(quiet=False)
            envguard.disable_screenshots()
        if ns.command is None:
            from glasskey.tui import app as tui_app

            fsutil.set_lock_identity(command="tui")
            tui_app.run(root or default_vault_dir(), open_request=ns.open)
            return 0
        handler: Handler = ns.handler
        if "ctx" not in inspect.signature(handler).parameters:  # demo, completion
            return call(handler, ns, {"vault_dir": root})
        action = getattr(ns, "action", None)
        fsutil.set_lock_identity(  # names only: never an argument that could be a secret
            command=" ".join(x for x in (ns.command, action) if isinstance(x, str)),
            operator=getattr(ns, "as_", None))
        vault = ClientSettings.from_env().open_vault(
            root or default_vault_dir(), lock_timeout=getattr(ns, "wait", DEFAULT_LOCK_WAIT))
        return call(handler, ns, {"ctx": context(ns, vault, as_json), "vault_dir": root})
    except GlasskeyError as exc:
        return fail(str(exc) if isinstance(exc, UsageError) and str(exc).startswith("glasskey")
                    else f"glasskey: {exc}", exc.exit_code, json_mode)
    except KeyboardInterrupt:
        return fail("glasskey: interrupted", 130, json_mode)
    except BrokenPipeError:
        return 1
    except Exception as exc:
        if os.environ.get("GLASSKEY_DEBUG") == "1":
            raise
        err = InternalError(f"internal error ({type(exc).__name__}); set GLASSKEY_DEBUG=1 to "
                            "see details")
        return fail(f"glasskey: {err}", err.exit_code, json_mode)


def fail(message: str, code: int, json_mode: bool) -> int:
    """The error sentence on stderr and, under --json, as a JSON object on stdout too."""
    note(message)
    if json_mode:
        try:
            out_json({"error": message.removeprefix("glasskey: "), "exit": code})
        except BrokenPipeError:
            pass
    return code


def run() -> None:
    sys.exit(main())
