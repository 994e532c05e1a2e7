"""The outage loop on the command line (issue 14): ``notify test``, ``relay`` and
``drill``. Not in DOCS, so shell completion does not offer them (as before)."""

from __future__ import annotations

import time

from glasskey.core.api import UsageError, Vault
from glasskey.tui.cli.actor import Ctx, authenticate
from glasskey.tui.cli.output import note, show
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.prompts import interactive
from glasskey.tui.cli.render import drill_doc, drill_line

NO_CHANNEL = "no notification channel is configured ([notify] in glasskey.toml)"


def notify_test(ctx: Ctx) -> int:
    results = ctx.vault.notify_test()
    if not results:
        raise UsageError(NO_CHANNEL)
    show(ctx.json, results, *(f"{channel}: {'delivered' if why is None else 'FAILED: ' + why}"
                              for channel, why in results.items()))
    return 0 if all(why is None for why in results.values()) else 1


def change_counter(vault: Vault) -> int:
    """The vault's change counter: a stat when nothing changed. The relay's one reach
    into the storage layer."""
    return vault.store.seq()


def relay(ctx: Ctx, *, interval: str, once: bool) -> int:
    """Poll the vault's change counter; on a change, and at least every few seconds for
    back-offs and lease warnings, retry what is due.

    The relay holds no operator key: the failures it meets are queued unaudited and
    the next authenticated command records them (core/notify.py)."""
    try:
        seconds = float(interval)
    except ValueError:
        seconds = float("nan")
    if not 0.05 <= seconds <= 3600:
        raise UsageError("--interval wants seconds between 0.05 and 3600")
    if ctx.vault.notify_settings() is None:
        raise UsageError(NO_CHANNEL)
    every = max(seconds, 5.0)
    last_seq: int | None = None
    last_pass = 0.0
    try:
        while True:
            seq = change_counter(ctx.vault)
            now = time.monotonic()
            if seq != last_seq or now - last_pass >= every:
                ctx.vault.notify_sweep(None, background=False)
                last_seq, last_pass = change_counter(ctx.vault), now
                if once:
                    return 0
            time.sleep(seconds)
    except KeyboardInterrupt:
        note("relay: stopped")
        return 0


def drill(ctx: Ctx, *, cred: str | None, kit: bool, check_code: str | None) -> int:
    if kit:
        code = check_code
        if not code and interactive():
            code = input("Check code printed with the kit parts: ")
        if not code:
            raise UsageError("a kit drill needs --check-code CODE (printed with each kit part)")
        session = authenticate(ctx)
        result = ctx.vault.kit_drill(session, code)
    else:
        if check_code:
            raise UsageError("--check-code goes with --kit")
        session = authenticate(ctx)
        result = ctx.vault.drill(session, cred)
    show(ctx.json, drill_doc(result), drill_line(result))
    return 0


def add_notify_parsers(cmds: Commands) -> None:
    group = cmds.command("notify", help="notification channels: 'notify test' sends a test "
                         "event to each")
    cmds.action(cmds.actions(group), "test", handler=notify_test,
                help="send a test event to each channel")


def add_relay_parser(cmds: Commands) -> None:
    p = cmds.command("relay", handler=relay,
                     help="deliver queued notifications and lease warnings until Ctrl-C")
    p.add_argument("--interval", metavar="SECONDS", default="1",
                   help="how often to look at the vault's change counter (default 1)")
    p.add_argument("--once", action="store_true", help="one pass, then exit")


def add_drill_parser(cmds: Commands) -> None:
    p = cmds.command("drill", cmds.actor, handler=drill,
                     help="readiness: unlock and open your own share (nothing released)")
    p.add_argument("--cred", metavar="NAME", help="the credential (default: a random one "
                   "you hold a share of)")
    p.add_argument("--kit", action="store_true",
                   help="kit drill: compare the check code printed with the kit parts")
    p.add_argument("--check-code", metavar="CODE", help="kit drill: the code on the envelope")


PARSERS = {"notify": add_notify_parsers, "relay": add_relay_parser, "drill": add_drill_parser}
