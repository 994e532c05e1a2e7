"""The outage loop on the command line (issue 14): ``notify test``, ``relay``,
``drill`` and ``open``. Kept apart from tui/cli.py, which only registers them."""

from __future__ import annotations

import argparse
import time
from typing import Any

from core.errors import UsageError
from core.vault import Vault


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


def cmd_notify(vault: Vault, args: argparse.Namespace) -> int:
    from tui.cli import out_json

    results = vault.notify_test()
    if not results:
        raise UsageError("no notification channel is configured ([notify] in glasskey.toml)")
    if args.json:
        out_json(results)
    else:
        for channel, why in results.items():
            print(f"{channel}: {'delivered' if why is None else 'FAILED: ' + why}")
    return 0 if all(why is None for why in results.values()) else 1


def cmd_relay(vault: Vault, args: argparse.Namespace) -> int:
    """Poll the vault's change counter (a stat when nothing changed); on a change, and
    at least every few seconds for back-offs and lease warnings, retry what is due.

    The relay holds no operator key: the failures it meets are queued unaudited and
    the next authenticated command records them (core/notify.py)."""
    from tui.cli import note

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
