"""Rotations: ``checkin`` (end a checkout, rotate), ``apply`` (manual targets: fetch the
value to set, then ``--confirm``) and ``reconcile`` (finish an interrupted rotation).

A failed rotation exits 1. These commands authenticate without running the sweep
(``authenticate(ctx, sweep=False)``), as they always have.
"""

from __future__ import annotations

import sys

from glasskey.tui.cli.actor import Ctx, authenticate
from glasskey.tui.cli.output import note, out_json, show
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.render import rotation_detail, rotation_doc, rotation_exit


def checkin(ctx: Ctx, *, request: str) -> int:
    ctx.vault.checkout(request)
    session = authenticate(ctx, sweep=False)
    result = ctx.vault.checkin(session, request)
    show(ctx.json, {"id": request, **rotation_doc(result)},
         f"{request} checked in; rotation {rotation_detail(result)}")
    return rotation_exit(result)


def apply(ctx: Ctx, *, cred: str, confirm: bool) -> int:
    ctx.vault.credential(cred)
    session = authenticate(ctx, sweep=False)
    if confirm:
        result = ctx.vault.confirm_applied(session, cred)
        show(ctx.json, rotation_doc(result, message=False),
             f"{result.credential}: applied value confirmed (version {result.version})")
        return 0
    value = ctx.vault.reveal_apply(session, cred)
    if ctx.json:
        out_json({"credential": cred, "value": value.reveal()})
    else:
        sys.stdout.write(value.reveal() + "\n")  # verbatim: it is to be set on the target
        if sys.stderr.isatty():
            note(f"set this value on the target, then run 'glasskey apply {cred} --confirm'")
    return 0


def reconcile(ctx: Ctx, *, cred: str, fresh: bool) -> int:
    ctx.vault.credential(cred)
    session = authenticate(ctx, sweep=False)
    result = ctx.vault.reconcile(session, cred, fresh=fresh)
    show(ctx.json, rotation_doc(result), f"{result.credential}: {rotation_detail(result)}")
    return rotation_exit(result)


def add_checkin_parser(cmds: Commands) -> None:
    p = cmds.command("checkin", cmds.actor, handler=checkin)
    p.add_argument("request", metavar="REQ", help="the request id")


def add_reconcile_parser(cmds: Commands) -> None:
    p = cmds.command("reconcile", cmds.actor, handler=reconcile)
    p.add_argument("cred", metavar="CRED")
    p.add_argument("--fresh", action="store_true", help="roll the pending value back (only "
                   "when the target provably still has the current one) and rotate anew")


def add_apply_parser(cmds: Commands) -> None:
    p = cmds.command("apply", cmds.actor, handler=apply)
    p.add_argument("cred", metavar="CRED")
    p.add_argument("--confirm", action="store_true", help="the target now has the value")


PARSERS = {"checkin": add_checkin_parser, "reconcile": add_reconcile_parser,
           "apply": add_apply_parser}
