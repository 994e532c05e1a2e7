"""The outage loop on the command line (issue 14): ``notify test``, ``relay``,
``drill`` and ``open``. Kept apart from tui/cli.py, which only registers them."""

from __future__ import annotations

import argparse
import time
from typing import Any

from glasskey.core.errors import UsageError
from glasskey.core.text import printable
from glasskey.core.vault import Vault


def emit(text: str) -> None:
    """One line on stdout; a receiver's or user's control characters shown escaped."""
    print(printable(text))

def add_parsers(sub: Any, common: argparse.ArgumentParser,
                actor: argparse.ArgumentParser) -> None:
    """Add ``notify``, ``relay``, ``drill`` and ``open`` to the command parser."""
    p = sub.add_parser("notify", parents=[common],
                       help="notification channels: 'notify test' sends a test event to each")
    p.add_argument("action", choices=["test"])
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser("relay", parents=[common],
                       help="deliver queued notifications and lease warnings until Ctrl-C")
    p.add_argument("--interval", metavar="SECONDS", default="1",
                   help="how often to look at the vault's change counter (default 1)")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.set_defaults(func=cmd_relay)

    p = sub.add_parser("drill", parents=[common, actor],
                       help="readiness: unlock and open your own share (nothing released)")
    p.add_argument("--cred", metavar="NAME", help="the credential (default: a random one "
                   "you hold a share of)")
    p.add_argument("--kit", action="store_true",
                   help="kit drill: compare the check code printed with the kit parts")
    p.add_argument("--check-code", metavar="CODE", help="kit drill: the code on the envelope")
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser("open", parents=[common],
                       help="open the terminal UI on a request (after unlock)")
    p.add_argument("request", metavar="REQ")
    p.set_defaults(func=cmd_open)


def cmd_notify(vault: Vault, args: argparse.Namespace) -> int:
    from glasskey.tui.cli import out_json

    results = vault.notify_test()
    if not results:
        raise UsageError("no notification channel is configured ([notify] in glasskey.toml)")
    if args.json:
        out_json(results)
    else:
        for channel, why in results.items():
            emit(f"{channel}: {'delivered' if why is None else 'FAILED: ' + why}")
    return 0 if all(why is None for why in results.values()) else 1


def cmd_relay(vault: Vault, args: argparse.Namespace) -> int:
    """Poll the vault's change counter (a stat when nothing changed); on a change, and
    at least every few seconds for back-offs and lease warnings, retry what is due.

    The relay holds no operator key: the failures it meets are queued unaudited and
    the next authenticated command records them (core/notify.py)."""
    from glasskey.tui.cli import note

    try:
        interval = float(args.interval)
    except ValueError:
        interval = float("nan")
    if not 0.05 <= interval <= 3600:
        raise UsageError("--interval wants seconds between 0.05 and 3600")
    if vault.notify_settings() is None:
        raise UsageError("no notification channel is configured ([notify] in glasskey.toml)")
    every = max(interval, 5.0)
    last_seq: int | None = None
    last_pass = 0.0
    try:
        while True:
            seq = vault.store.seq()
            now = time.monotonic()
            if seq != last_seq or now - last_pass >= every:
                vault.notify_sweep(None, background=False)
                last_seq, last_pass = vault.store.seq(), now
                if args.once:
                    return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        note("relay: stopped")
        return 0


def cmd_drill(vault: Vault, args: argparse.Namespace) -> int:
    from glasskey.tui.cli import authenticate, interactive, out_json

    if args.kit:
        code = args.check_code
        if not code and interactive():
            code = input("Check code printed with the kit parts: ")
        if not code:
            raise UsageError("a kit drill needs --check-code CODE (printed with each kit part)")
        session = authenticate(vault, args)
        result = vault.kit_drill(session, code)
    else:
        if args.check_code:
            raise UsageError("--check-code goes with --kit")
        session = authenticate(vault, args)
        result = vault.drill(session, args.cred)
    if args.json:
        out_json({"kind": result.kind, "subject": result.subject, "version": result.version,
                  "passed": list(result.checks)})
    else:
        what = f"kit {result.subject}" if result.kind == "kit" else \
            f"{result.subject} version {result.version}"
        emit(f"drill passed: {what}: {', '.join(result.checks)} (signed and audited; "
              "nothing was combined or released)")
    return 0


def cmd_open(vault: Vault, args: argparse.Namespace) -> int:
    """``glasskey open REQ``: the TUI, on that request once unlocked."""
    from glasskey.core import fsutil
    from glasskey.tui import app as tui_app

    vault.checkout(args.request)  # an unknown id is a usage error before the TUI starts
    fsutil.set_lock_identity(command="tui")  # tui/cli.py main scrubbed the environment
    tui_app.run(vault.store, open_request=args.request)
    return 0
