"""``glasskey kit ...``: the emergency kit. Issued by two operators, it is split into two
parts that nobody holds together; ``kit use`` opens one credential with both parts
when no approver can be reached, and burns the kit."""

from __future__ import annotations

import sys

from glasskey.core.api import UsageError, cap_all, parse_duration
from glasskey.tui.cli.actor import Ctx, authenticate, second_session
from glasskey.tui.cli.output import emit, note, out_json, progress_printer, show, show_qr
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.prompts import ask_hidden, interactive, read_code_file, read_passphrase
from glasskey.tui.cli.render import committed


def kit_status(ctx: Ctx) -> int:
    kit = ctx.vault.active_kit()
    show(ctx.json, {"active": kit is not None, "fingerprint": kit["fingerprint"] if kit else None},
         f"active kit {kit['id']} fingerprint {kit['fingerprint']}" if kit
         else "no emergency kit is issued")
    return 0


def kit_issue(ctx: Ctx) -> int:
    first = authenticate(ctx)
    second = second_session(ctx)
    issued = ctx.vault.issue_kit([first, second], progress_printer("giving the kit shares"))
    show(ctx.json, {"id": issued.id, "fingerprint": issued.fingerprint,
                    "part_holders": list(issued.holders)},
         f"emergency kit {issued.id} issued, fingerprint {issued.fingerprint}",
         "It has two parts; nobody holds both. Each holder prints theirs on their "
         "own terminal, seals it in its own envelope and puts it in the safe:",
         *(f"  glasskey kit part --as {name}" for name in issued.holders),
         "Any earlier kit is burned.")
    return 0


def kit_part(ctx: Ctx) -> int:
    session = authenticate(ctx)
    part = ctx.vault.kit_part(session)
    check = str((ctx.vault.active_kit() or {}).get("fingerprint", ""))  # drill --kit
    if ctx.json:
        out_json({"part": part, "check_code": check})
        return 0
    print("YOUR PART of the emergency kit — print it, seal it in an envelope with your "
          "name, put it in the safe. It is erased from the vault now.")
    print(part)  # verbatim: it is what goes in the envelope
    show_qr(part, sys.stdout)
    emit(f"check code (write it on the envelope; 'glasskey drill --kit'): {check}")
    return 0


def kit_burn(ctx: Ctx) -> int:
    session = authenticate(ctx)
    names = ctx.vault.burn_kit(session, "exposed")
    show(ctx.json, {"burned": True, "to_rotate": names},
         f"kit burned; {len(names)} credential(s) it could open must be rotated: "
         "run 'glasskey kit sweep'")
    return 0


def kit_sweep(ctx: Ctx) -> int:
    session = authenticate(ctx)
    results = ctx.vault.kit_sweep(session, progress_printer("rotating what the kit could open"))
    left = ctx.vault.kit_exposure()
    show(ctx.json, {"rotated": [r.credential for r in results if r.outcome == "committed"],
                    "left": len(left)},
         f"kit sweep: {committed(results)}/{len(results)} rotated; {len(left)} still exposed")
    return 0 if not left else 1


def read_kit_parts(code_files: list[str] | None) -> str:
    """Both kit parts, from files (one each, or one holding both; '-' = stdin) or typed
    without echo on a terminal. Never from argv."""
    code = ""
    if code_files:
        code = " ".join(read_passphrase(f, "") if f == "-" else read_code_file(f)
                        for f in code_files)
    elif interactive():
        code = " ".join(ask_hidden(f"Kit part {i}: ") for i in (1, 2))
    if not code:
        raise UsageError("give both kit parts with --code-file (twice, or one file with "
                         "both) or on the terminal")
    return code


def kit_use(ctx: Ctx, *, cred: str, code_file: list[str] | None, reason: str | None,
            ticket: str | None, duration: str) -> int:
    ctx.vault.credential(cred)
    cap_all(reason=reason, ticket=ticket)
    seconds = parse_duration(duration)
    code = read_kit_parts(code_file)
    from glasskey.core.api import decode_parts

    decode_parts(code)  # a typo or a missing part must not burn a TOTP code
    session = authenticate(ctx)
    co, secret = ctx.vault.emergency_reveal(session, cred, code, reason or "", ticket or "",
                                            seconds)
    if ctx.json:
        out_json({"id": co.id, "credential": co.cred_name, "secret": secret.reveal()})
    else:
        sys.stdout.write(secret.reveal() + "\n")  # the secret, verbatim: it is the point
        note(f"EMERGENCY USE {co.id} recorded; the kit is burned; check in with "
             f"'glasskey checkin {co.id}'")
    return 0


def add_kit_parsers(cmds: Commands) -> None:
    actions = cmds.actions(cmds.command("kit"))
    cmds.action(actions, "issue", cmds.actor, cmds.second, handler=kit_issue,
                help="issue a new kit (two operators; any earlier kit is burned)")
    cmds.action(actions, "part", cmds.actor, handler=kit_part,
                help="print your part of the kit, once")
    p = cmds.action(actions, "use", cmds.actor, handler=kit_use,
                    help="open a credential with both kit parts (burns the kit)")
    p.add_argument("cred", metavar="CRED", help="the credential")
    p.add_argument("--code-file", metavar="PATH", action="append",
                   help="file holding a kit part, given once per part or once with both "
                   "('-' = stdin; prompted on a terminal). Never on the command line.")
    p.add_argument("--reason", help="required")
    p.add_argument("--ticket", help="required")
    p.add_argument("--duration", required=True, help="required: 90s, 30m, 1h30m, 2h")
    cmds.action(actions, "status", handler=kit_status, help="is a kit issued, and which")
    cmds.action(actions, "burn", cmds.actor, handler=kit_burn,
                help="burn the kit (exposed): what it could open must be rotated")
    cmds.action(actions, "sweep", cmds.actor, handler=kit_sweep,
                help="rotate what a burned kit could open")


PARSERS = {"kit": add_kit_parsers}
