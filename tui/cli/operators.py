"""``glasskey operator ...``: the roster. Every change to it (add, suspend, reactivate,
remove, a TOTP reset) is signed by two operators; ``passwd`` is one's own."""

from __future__ import annotations

import argparse
import sys

from glasskey.core.api import ROLES, OperatorSpec, UsageError, cap, check_name
from glasskey.tui.cli.actor import Ctx, authenticate, check_second, known_operator, second_session
from glasskey.tui.cli.output import emit, out_json, progress_printer, show, show_qr
from glasskey.tui.cli.parser import Commands, Handler, Parser
from glasskey.tui.cli.prompts import (
    read_name,
    read_new_passphrase,
    read_passphrase,
    read_secret_text,
    read_totp,
)
from glasskey.tui.cli.render import committed, enrolment_doc, operator_line, sweep_doc


def operator_list(ctx: Ctx) -> int:
    ops = ctx.vault.operators()
    now = ctx.vault.now()
    show(ctx.json, [o.to_public() for o in ops], *(operator_line(o, now) for o in ops))
    return 0


def operator_add(ctx: Ctx, *, name: str, roles: str, new_passphrase_file: str | None,
                 totp_secret_file: str | None, totp_secret_argv: str | None) -> int:
    if totp_secret_argv is not None:
        raise UsageError("a TOTP key is never taken on the command line (other users can read "
                         "it there): use --totp-secret-file PATH, or - for stdin")
    check_name(name, "operator")
    role_list = tuple(r.strip() for r in roles.split(","))
    unknown = sorted(set(role_list) - set(ROLES))
    if unknown:
        raise UsageError(f"unknown role {unknown[0]!r}: use {', '.join(ROLES)}")
    check_second(ctx)
    if totp_secret_file == "-" and new_passphrase_file == "-":
        raise UsageError("only one of --new-passphrase-file and --totp-secret-file can "
                         "read stdin")
    seed = read_secret_text(totp_secret_file, "TOTP key") if totp_secret_file else None
    first = authenticate(ctx)
    second = second_session(ctx)
    new_pass = read_passphrase(new_passphrase_file, f"Passphrase for {name}: ")
    spec = OperatorSpec(name, role_list, new_pass, seed)
    enrolment = ctx.vault.add_operator([first, second], spec,
                                       progress_printer("re-sealing shares"))
    if ctx.json:
        out_json(enrolment_doc(enrolment))
        return 0
    emit(f"operator {enrolment.name} added ({enrolment.status})")
    if enrolment.status == "enrolling":
        show_qr(enrolment.uri, sys.stdout)
        emit(f"key: {enrolment.totp_secret}")
        emit("the operator becomes active at their first successful unlock")
    return 0


def operator_passwd(ctx: Ctx, *, new_passphrase_file: str | None) -> int:
    name = known_operator(ctx.vault, read_name(ctx.actor.name))
    if ctx.actor.passphrase_file == "-" and new_passphrase_file == "-":
        raise UsageError("only one of --passphrase-file and --new-passphrase-file can "
                         "read stdin")
    old = read_passphrase(ctx.actor.passphrase_file, f"Current passphrase for {name}: ")
    code = read_totp(ctx.actor.totp, name)
    new = read_new_passphrase(new_passphrase_file, f"New passphrase for {name}: ")
    ctx.vault.change_passphrase(name, old, code, new)
    show(ctx.json, {"name": name, "passphrase": "changed"}, f"passphrase of {name} changed")
    return 0


def operator_totp_reset(ctx: Ctx, *, name: str) -> int:
    known_operator(ctx.vault, name)
    check_second(ctx)
    passphrase = read_passphrase(ctx.actor.passphrase_file, f"Passphrase for {name}: ")
    witness = second_session(ctx)
    enrolment = ctx.vault.reset_totp(witness, name, passphrase)
    if ctx.json:
        out_json({"name": name, "totp_uri": enrolment.uri, "totp_secret": enrolment.totp_secret})
    else:
        emit(f"new TOTP key for {name} (shown once; the old one no longer works):")
        show_qr(enrolment.uri, sys.stdout)
        emit(f"key: {enrolment.totp_secret}")
    return 0


def operator_remove(ctx: Ctx, *, name: str, sweep: bool) -> int:
    known_operator(ctx.vault, name)
    first = authenticate(ctx)
    second = second_session(ctx)
    reachable = ctx.vault.remove_operator([first, second], name,
                                          progress_printer("re-splitting keys"))
    swept = ctx.vault.rotate_many(first, reachable, progress_printer("leaver sweep")) \
        if sweep else []
    if ctx.json:
        out_json({"removed": name, "reachable": reachable, "sweep": sweep_doc(swept)})
        return 0
    emit(f"operator {name} removed; every data key re-split without them")
    if swept:
        emit(f"leaver sweep: {committed(swept)}/{len(swept)} rotated")
        for r in swept:
            if r.outcome != "committed":
                emit(f"  {r.credential}: {r.outcome} {r.message}")
    elif reachable:
        emit(f"{len(reachable)} credential(s) they could reach should be rotated: "
             f"re-run with --sweep, or 'glasskey rotate' them")
    return 0


def operator_suspend(ctx: Ctx, *, name: str, reason: str | None) -> int:
    known_operator(ctx.vault, name)
    cap(reason or "", "reason")
    session = authenticate(ctx)
    second = second_session(ctx)  # a roster change is signed by two people
    ctx.vault.suspend_operator([session, second], name, reason or "")
    show(ctx.json, {"name": name, "status": "suspended"}, f"operator {name} suspended")
    return 0


def operator_reactivate(ctx: Ctx, *, name: str) -> int:
    known_operator(ctx.vault, name)
    session = authenticate(ctx)
    second = second_session(ctx)  # a roster change is signed by two people
    ctx.vault.reactivate_operator([session, second], name)
    show(ctx.json, {"name": name, "status": "active"}, f"operator {name} reactivated")
    return 0


def add_operator_parsers(cmds: Commands) -> None:
    group = cmds.command("operator")
    actions = cmds.actions(group)
    two = (cmds.actor, cmds.second)

    def named(action: str, handler: Handler, help: str, *parents: Parser) -> Parser:
        p = cmds.action(actions, action, *parents, handler=handler, help=help)
        p.add_argument("name", help="the operator")
        return p

    cmds.action(actions, "list", handler=operator_list, help="list the operators")
    p = named("add", operator_add, "add an operator (countersigned with --with)", *two)
    p.add_argument("--roles", required=True,
                   help="comma-separated requester,approver,admin (required)")
    p.add_argument("--new-passphrase-file", metavar="PATH",
                   help="the new operator's passphrase ('-' = stdin)")
    p.add_argument("--totp-secret-file", metavar="PATH",
                   help="file holding the new operator's TOTP key (base32; '-' = stdin); "
                   "generated when absent. Never on the command line.")
    p.add_argument("--totp-secret", dest="totp_secret_argv", help=argparse.SUPPRESS)
    p = named("suspend", operator_suspend, "suspend an operator (countersigned)", *two)
    p.add_argument("--reason", help="why")
    named("reactivate", operator_reactivate, "reactivate a suspended operator "
          "(countersigned)", *two)
    p = named("remove", operator_remove, "remove an operator: every data key is re-split "
              "without them (countersigned)", *two)
    p.add_argument("--sweep", action="store_true",
                   help="rotate every credential the leaver could reach")
    p = cmds.action(actions, "passwd", cmds.actor, handler=operator_passwd,
                    help="change your own passphrase")
    p.add_argument("--new-passphrase-file", metavar="PATH",
                   help="your new passphrase ('-' = stdin)")
    named("totp-reset", operator_totp_reset, "a new TOTP key for NAME, who gives their "
          "passphrase; the second operator countersigns with passphrase and TOTP",
          cmds.passphrase, cmds.second)


PARSERS = {"operator": add_operator_parsers}
