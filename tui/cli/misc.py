"""``init`` (found a vault), ``demo`` and ``open`` (the terminal UI), and the version."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from glasskey.core.api import Enrolment, GlasskeyError, OperatorSpec, UsageError, Vault, cap
from glasskey.tui.cli.actor import Ctx
from glasskey.tui.cli.output import emit, note, out_json, show_qr
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.prompts import ask, ask_hidden, interactive, read_json_file, read_totp
from glasskey.tui.cli.render import enrolment_doc


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("glasskey")
    except Exception:  # not installed (run from a checkout)
        return "0.1.0"


def read_operators_file(path: str) -> list[OperatorSpec]:
    try:
        raw = Path(path).read_text("utf-8") if path != "-" else sys.stdin.read()
        docs = json.loads(raw)
    except OSError as exc:
        raise UsageError(f"cannot read the operators file: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"the operators file is not valid JSON (line {exc.lineno})") from None
    if not isinstance(docs, list):
        raise UsageError("the operators file must hold a JSON list of operators")
    return [OperatorSpec.from_doc(d) for d in docs]


def init(ctx: Ctx, *, operators_file: str | None, founder_file: list[str] | None, label: str,
         kdf_seconds: float | None) -> int:
    cap(label, "label")
    if founder_file:
        specs = [OperatorSpec.from_doc(read_json_file(f, "founder file")) for f in founder_file]
    elif operators_file:
        specs = read_operators_file(operators_file)
        if interactive():
            note("note: whoever wrote this file knows every founder's passphrase; "
                 "--founder-file (one per founder) or the prompts avoid that")
    elif interactive():
        specs = prompt_founders()
    else:
        raise UsageError("give the founding operators with --operators-file F")
    kdf_params = None
    if kdf_seconds is not None:
        from glasskey.core.api import kdf

        kdf_params = kdf.calibrate(kdf_seconds)
    enrolments = ctx.vault.initialise(specs, label=label, kdf_params=kdf_params)
    if interactive() and not ctx.json:
        for e in enrolments:
            if e.status == "enrolling":
                confirm_enrolment(ctx.vault, e, next(s for s in specs if s.name == e.name))
    report_enrolments(ctx, enrolments)
    return 0


def prompt_founders() -> list[OperatorSpec]:
    specs: list[OperatorSpec] = []
    note("Founding operators (at least two). Leave the name empty to finish.")
    while True:
        name = ask("Name: ")
        if not name:
            if len(specs) >= 2:
                return specs
            note("at least two founding operators are needed")
            continue
        roles = tuple(r.strip() for r in ask("Roles (requester,approver,admin): ").split(",")
                      if r.strip())
        p1 = ask_hidden("Passphrase (12+ characters): ")
        p2 = ask_hidden("Again: ")
        if p1 != p2:
            note("the passphrases differ; start this operator again")
            continue
        specs.append(OperatorSpec(name, roles, p1))


def confirm_enrolment(vault: Vault, e: Enrolment, spec: OperatorSpec) -> None:
    note(f"\n{e.name}: scan this with an authenticator app, or enter the key by hand.")
    show_qr(e.uri, sys.stderr)
    note(f"key: {e.totp_secret}")
    for _ in range(3):
        code = read_totp(None, e.name)
        try:
            vault.unlock(e.name, spec.passphrase, code)
            note(f"{e.name}: TOTP confirmed, operator active")
            return
        except GlasskeyError as exc:
            note(str(exc))
    note(f"{e.name} stays 'enrolling' until their first successful unlock")


def vault_name(vault: Vault) -> str:
    """The vault as the user named it: its directory, or its database (no role)."""
    return str(getattr(vault.store, "location", vault.root))


def report_enrolments(ctx: Ctx, enrolments: list[Enrolment]) -> None:
    if ctx.json:
        out_json({"vault": vault_name(ctx.vault), "vault_id": ctx.vault.vault_id,
                  "operators": [enrolment_doc(e) for e in enrolments]})
        return
    emit(f"vault created at {vault_name(ctx.vault)}")
    if not interactive():
        for e in enrolments:
            if e.status == "enrolling":
                emit(f"{e.name}: enrol this TOTP key, then unlock once to activate: {e.uri}")


def demo(*, vault_dir: str | None) -> int:
    """A throwaway demo vault, then the terminal UI on it."""
    from glasskey.tui import app as tui_app
    from glasskey.tui import demo as tui_demo

    root = Path(vault_dir) if vault_dir else \
        Path(tempfile.mkdtemp(prefix="glasskey-demo-")) / "vault"
    if (root / "vault.json").exists():
        raise UsageError(f"{root} already holds a vault; the demo needs a fresh directory")
    # The demo's witness checkpoints stay beside the throwaway vault, not in $HOME.
    os.environ.setdefault("GLASSKEY_STATE_DIR", str(root.parent / "client-state"))
    info = tui_demo.make_demo_vault(root)
    note(f"demo vault at {root}\nsecond terminal (another operator): {info.second_terminal()}")
    tui_app.run(root, demo=info)
    note(f"the demo vault stays at {root} (delete it when done)")
    return 0


def open_request(ctx: Ctx, *, request: str) -> int:
    """``glasskey open REQ``: the TUI, on that request once unlocked."""
    from glasskey.core.api import fsutil
    from glasskey.tui import app as tui_app

    ctx.vault.checkout(request)  # an unknown id is a usage error before the TUI starts
    fsutil.set_lock_identity(command="tui")  # main() scrubbed the environment
    tui_app.run(ctx.vault.store, open_request=request)
    return 0


def add_init_parser(cmds: Commands) -> None:
    p = cmds.command("init", handler=init)
    founders = p.add_mutually_exclusive_group()
    founders.add_argument("--operators-file", metavar="F", help="JSON list of {name, roles, "
                          "passphrase, totp_secret?} (for scripts and tests: whoever writes it "
                          "knows every founder's factors)")
    founders.add_argument("--founder-file", metavar="F", action="append",
                          help="one founder's own JSON {name, roles, passphrase, totp_secret?}, "
                          "written by that founder; give it once per founder")
    p.add_argument("--label", default="vault", help="a name shown in authenticator apps")
    p.add_argument("--kdf-seconds", type=float, help="Argon2id calibration target (default "
                   "0.5 s)")


def add_demo_parser(cmds: Commands) -> None:
    cmds.command("demo", handler=demo)


def add_open_parser(cmds: Commands) -> None:
    p = cmds.command("open", handler=open_request,
                     help="open the terminal UI on a request (after unlock)")
    p.add_argument("request", metavar="REQ")


PARSERS = {"init": add_init_parser, "demo": add_demo_parser, "open": add_open_parser}
