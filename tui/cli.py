"""The ``glasskey`` command line: a thin front over the core services.

DESIGN.md's scripting interface is a contract: every command takes ``--json``
and ``--vault DIR`` after its name; commands that act as an operator take
``--as``, ``--totp`` and ``--passphrase-file`` and prompt for what is missing
when a terminal is attached. Errors are one sentence on stderr, never a
traceback. Exit codes: 0 ok, 1 refused (policy/authentication), 2 usage,
3 integrity.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from core import fsutil
from core.base import default_vault_dir
from core.clock import iso
from core.connectors import registry
from core.credentials import CredentialSpec
from core.errors import GlasskeyError, UsageError
from core.models import Checkout, Policy, format_duration, parse_duration
from core.operators import Enrolment, OperatorSpec
from core.secret import SecretValue
from core.session import Session
from core.vault import Vault

EXIT_INTERNAL = 1


class CliUsage(Exception):
    """argparse errors, turned into exit code 2 with one sentence."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliUsage(f"{self.prog}: {message}")


# -- output helpers --------------------------------------------------------------------------
def out_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def note(text: str) -> None:
    sys.stderr.write(text + "\n")


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def progress_printer(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def show_qr(uri: str, stream: TextIO) -> None:
    try:
        import segno

        segno.make(uri, error="m").terminal(out=stream, compact=True)
    except Exception:
        stream.write("(QR code unavailable in this terminal)\n")


# -- authentication --------------------------------------------------------------------------
def read_passphrase(path: str | None, prompt: str) -> str:
    if path == "-":
        data = sys.stdin.readline()
        return data[:-1] if data.endswith("\n") else data
    if path:
        try:
            data = Path(path).read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the passphrase file: {exc.strerror}") from None
        return data[:-1] if data.endswith("\n") else data
    if interactive():
        return getpass.getpass(prompt, stream=sys.stderr)
    raise UsageError("no passphrase given: use --passphrase-file PATH (or - for stdin)")


def read_code_file(path: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the kit part file: {exc.strerror}") from None


def read_totp(code: str | None, who: str) -> str:
    if code:
        return code
    if interactive():
        sys.stderr.write(f"TOTP code for {who}: ")
        sys.stderr.flush()
        return sys.stdin.readline().strip()
    raise UsageError("no TOTP code given: use --totp CODE")


def read_name(name: str | None) -> str:
    if name:
        return name
    if interactive():
        sys.stderr.write("Operator: ")
        sys.stderr.flush()
        return sys.stdin.readline().strip()
    raise UsageError("say who is acting with --as NAME")


def authenticate(vault: Vault, args: argparse.Namespace, *, sweep: bool = True) -> Session:
    name = read_name(args.as_)
    passphrase = read_passphrase(args.passphrase_file, f"Passphrase for {name}: ")
    code = read_totp(args.totp, name)
    session = vault.unlock(name, passphrase, code)
    if sweep:
        report = vault.sweep(session)
        for err in report.errors:
            note(f"warning: {err}")
        for res in report.rotated:
            if res.outcome == "failed":
                note(f"ROTATION FAILED: {res.credential}: {res.message}")
    return session


def second_session(vault: Vault, args: argparse.Namespace) -> Session:
    name = args.with_
    if not name:
        if not interactive():
            raise UsageError("this needs a second operator: --with NAME --with-totp CODE "
                             "--with-passphrase-file PATH")
        sys.stderr.write("Second operator: ")
        sys.stderr.flush()
        name = sys.stdin.readline().strip()
    passphrase = read_passphrase(args.with_passphrase_file, f"Passphrase for {name}: ")
    code = read_totp(args.with_totp, name)
    return vault.unlock(name, passphrase, code)


# -- commands --------------------------------------------------------------------------------
def cmd_init(vault: Vault, args: argparse.Namespace) -> int:
    specs: list[OperatorSpec] = []
    if args.operators_file:
        try:
            raw = Path(args.operators_file).read_text("utf-8") if args.operators_file != "-" \
                else sys.stdin.read()
            docs = json.loads(raw)
        except OSError as exc:
            raise UsageError(f"cannot read the operators file: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"the operators file is not valid JSON (line {exc.lineno})") \
                from None
        if not isinstance(docs, list):
            raise UsageError("the operators file must hold a JSON list of operators")
        specs = [OperatorSpec.from_doc(d) for d in docs]
    elif interactive():
        specs = prompt_founders()
    else:
        raise UsageError("give the founding operators with --operators-file F")
    kdf_params = None
    if args.kdf_seconds is not None:
        from core.crypto import kdf

        kdf_params = kdf.calibrate(args.kdf_seconds)
    enrolments = vault.initialise(specs, label=args.label, kdf_params=kdf_params)
    if interactive() and not args.json:
        for e in enrolments:
            if e.status == "enrolling":
                confirm_enrolment(vault, e, next(s for s in specs if s.name == e.name))
    report_enrolments(args, vault, enrolments)
    return 0


def prompt_founders() -> list[OperatorSpec]:
    specs: list[OperatorSpec] = []
    note("Founding operators (at least two). Leave the name empty to finish.")
    while True:
        sys.stderr.write("Name: ")
        sys.stderr.flush()
        name = sys.stdin.readline().strip()
        if not name:
            if len(specs) >= 2:
                return specs
            note("at least two founding operators are needed")
            continue
        sys.stderr.write("Roles (requester,approver,admin): ")
        sys.stderr.flush()
        roles = tuple(r.strip() for r in sys.stdin.readline().split(",") if r.strip())
        p1 = getpass.getpass("Passphrase (12+ characters): ", stream=sys.stderr)
        p2 = getpass.getpass("Again: ", stream=sys.stderr)
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


def report_enrolments(args: argparse.Namespace, vault: Vault, enrolments: list[Enrolment]
                      ) -> None:
    pending = [e for e in enrolments if e.status == "enrolling"]
    if args.json:
        out_json({"vault": str(vault.root), "vault_id": vault.vault_id, "operators": [
            {"name": e.name, "status": e.status,
             **({"totp_uri": e.uri, "totp_secret": e.totp_secret}
                if e.status == "enrolling" else {})}
            for e in enrolments]})
        return
    print(f"vault created at {vault.root}")
    if pending and not interactive():
        for e in pending:
            print(f"{e.name}: enrol this TOTP key, then unlock once to activate: {e.uri}")


def cmd_operator(vault: Vault, args: argparse.Namespace) -> int:
    if args.action == "list":
        ops = vault.operators()
        if args.json:
            out_json([o.to_public() for o in ops])
        else:
            for o in ops:
                lock = " (locked)" if o.locked_until > vault.now() else ""
                print(f"{o.name:20} {o.status:10} {','.join(o.roles)}{lock}")
        return 0
    if args.action == "add":
        if not args.name or not args.roles:
            raise UsageError("operator add NAME --roles R[,R] needs a name and roles")
        first = authenticate(vault, args)
        second = second_session(vault, args)
        new_pass = read_passphrase(args.new_passphrase_file, f"Passphrase for {args.name}: ")
        spec = OperatorSpec(args.name, tuple(r.strip() for r in args.roles.split(",")),
                            new_pass, args.totp_secret)
        enrolment = vault.add_operator([first, second], spec,
                                       progress_printer("re-sealing shares"))
        if args.json:
            out_json({"name": enrolment.name, "status": enrolment.status,
                      **({"totp_uri": enrolment.uri, "totp_secret": enrolment.totp_secret}
                         if enrolment.status == "enrolling" else {})})
        else:
            print(f"operator {enrolment.name} added ({enrolment.status})")
            if enrolment.status == "enrolling":
                show_qr(enrolment.uri, sys.stdout)
                print(f"key: {enrolment.totp_secret}")
                print("the operator becomes active at their first successful unlock")
        return 0
    if args.action == "remove":
        if not args.name:
            raise UsageError("operator remove NAME --with SECOND ...")
        first = authenticate(vault, args)
        second = second_session(vault, args)
        reachable = vault.remove_operator([first, second], args.name,
                                          progress_printer("re-splitting keys"))
        swept = []
        if args.sweep:
            swept = vault.rotate_many(first, reachable, progress_printer("leaver sweep"))
        if args.json:
            out_json({"removed": args.name, "reachable": reachable,
                      "sweep": [{"credential": r.credential, "outcome": r.outcome,
                                 "message": r.message or None} for r in swept]})
        else:
            print(f"operator {args.name} removed; every data key re-split without them")
            if swept:
                done = sum(1 for r in swept if r.outcome == "committed")
                print(f"leaver sweep: {done}/{len(swept)} rotated")
                for r in swept:
                    if r.outcome != "committed":
                        print(f"  {r.credential}: {r.outcome} {r.message}")
            elif reachable:
                print(f"{len(reachable)} credential(s) they could reach should be rotated: "
                      f"re-run with --sweep, or 'glasskey rotate' them")
        return 0
    if args.action in ("suspend", "reactivate"):
        if not args.name:
            raise UsageError(f"operator {args.action} NAME")
        session = authenticate(vault, args)
        second = second_session(vault, args)  # a roster change is signed by two people
        if args.action == "suspend":
            vault.suspend_operator([session, second], args.name, args.reason or "")
        else:
            vault.reactivate_operator([session, second], args.name)
        if args.json:
            out_json({"name": args.name, "status": "suspended" if args.action == "suspend"
                      else "active"})
        else:
            print(f"operator {args.name} {args.action}d" if args.action == "suspend"
                  else f"operator {args.name} reactivated")
        return 0
    raise UsageError(f"unknown operator action {args.action!r}")


def policy_from(args: argparse.Namespace) -> Policy:
    base = Policy()
    return Policy(
        k=args.k or base.k,
        max_duration=parse_duration(args.max_duration) if args.max_duration
        else base.max_duration,
        length=args.length or base.length,
        classes=tuple(c.strip() for c in args.classes.split(",")) if args.classes
        else base.classes,
        exclude=args.exclude if args.exclude is not None else base.exclude,
    )


def read_secret_file(path: str) -> SecretValue:
    try:
        data = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the secret file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError("the secret file is not UTF-8 text") from None
    return SecretValue(data[:-1] if data.endswith("\n") else data)


def cred_public(vault: Vault, c: Any, active: dict[str, dict[str, Any]]) -> dict[str, Any]:
    entry = active.get(c.id)
    state = c.status
    holder = None
    if entry:
        state = entry["state"]
        holder = entry["requester"]
        if state == "checked-out" and entry.get("lease_expires") and \
                vault.now() >= float(entry["lease_expires"]):
            state = "overdue"
    return {"name": c.name, "kind": c.kind, "connector": c.connector, "target": c.target,
            "version": c.version, "status": c.status, "state": state, "holder": holder,
            "request": entry["request"] if entry else None,
            "rotated_at": iso(c.rotated_at), "k": c.policy.k,
            "max_duration": c.policy.max_duration, "failure": c.failure or None}


def cmd_cred(vault: Vault, args: argparse.Namespace) -> int:
    if args.action == "list":
        creds = vault.credentials()
        active = vault.active_map()
        rows = [cred_public(vault, c, active) for c in creds]
        if args.json:
            out_json(rows)
        else:
            for r in rows:
                holder = f" {r['holder']}" if r["holder"] else ""
                state = r["state"].upper() if r["state"] in (
                    "rotation-failed", "overdue") else r["state"]
                print(f"{r['name']:28} {r['kind']:12} {state}{holder}  v{r['version']} "
                      f"rotated {r['rotated_at']}")
        return 0
    if args.action == "add":
        if not args.name:
            raise UsageError("cred add NAME needs a name")
        options = {}
        if args.dn:
            options["dn"] = args.dn
        if args.admin_service:
            options["admin_service"] = args.admin_service
        for item in args.option or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--option wants KEY=VALUE, got {item!r}")
            options[key] = value
        spec = CredentialSpec(
            name=args.name, kind=args.kind, connector=args.connector,
            secret=read_secret_file(args.secret_file) if args.secret_file else None,
            target=args.target, options=options, policy=policy_from(args))
        registry.check(spec.connector, spec.target, spec.options)  # before a TOTP is spent
        session = authenticate(vault, args)
        cred = vault.add_credential(session, spec)
        if args.json:
            out_json({"name": cred.name, "id": cred.id, "version": cred.version})
        else:
            print(f"credential {cred.name} added (version {cred.version})")
        return 0
    if args.action == "import":
        if not args.file:
            raise UsageError("cred import --file F.jsonl")
        specs = read_import(args.file)
        session = authenticate(vault, args)
        creds = vault.import_credentials(session, specs, progress_printer("importing"))
        if args.json:
            out_json({"imported": len(creds)})
        else:
            print(f"imported {len(creds)} credential(s)")
        return 0
    raise UsageError(f"unknown cred action {args.action!r}")


def read_import(path: str) -> list[CredentialSpec]:
    try:
        fh = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    specs = []
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                raise UsageError(f"line {lineno} of the import is not valid JSON") from None
            if not isinstance(doc, dict) or "name" not in doc:
                raise UsageError(f"line {lineno} of the import lacks a name")
            unknown = set(doc) - {"name", "kind", "connector", "secret", "target", "options"}
            if unknown:
                raise UsageError(f"line {lineno} has unknown field(s) {', '.join(sorted(unknown))}")
            secret = doc.get("secret")
            specs.append(CredentialSpec(
                name=str(doc["name"]), kind=str(doc.get("kind", "break-glass")),
                connector=str(doc.get("connector", "generated")),
                secret=SecretValue(str(secret)) if secret is not None else None,
                target=doc.get("target"), options=dict(doc.get("options") or {})))
    return specs


def checkout_line(c: Checkout, now: float) -> str:
    state = c.display_state(now)
    extra = ""
    if c.lease_expires and state == "checked-out":
        extra = f" ({format_duration(c.lease_expires - now)} left)"
    if c.released:
        extra += f" (released: approved, then {c.end_reason or c.closed_reason})"
    return (f"{c.id}  {c.cred_name:24} {state.upper() if state == 'overdue' else state}"
            f"{extra}  by {c.requester}  ticket {c.ticket}")


def cmd_request(vault: Vault, args: argparse.Namespace) -> int:
    if args.cred == "list":
        items = vault.checkouts(open_only=not args.all)
        now = vault.now()
        if args.json:
            out_json([c.to_public(now) for c in items])
        else:
            for c in items:
                print(checkout_line(c, now))
            if not items:
                print("no open checkouts" if not args.all else "no checkouts")
        return 0
    if args.cred == "clear":
        if not args.requester or not (args.reason or "").strip():
            raise UsageError("request clear --requester NAME --reason TEXT (an admin closes "
                             "every open, unrevealed request of NAME)")
        session = authenticate(vault, args)
        closed, skipped = vault.clear_requests(session, args.requester, args.reason)
        if args.json:
            out_json({"requester": args.requester, "closed": closed, "skipped": skipped})
        else:
            print(f"{len(closed)} request(s) of {args.requester} closed"
                  + (f"; {len(skipped)} revealed checkout(s) left to check-in"
                     if skipped else ""))
        return 0
    if not args.duration:
        raise UsageError("--duration is required (e.g. 30m)")
    duration = parse_duration(args.duration)
    session = authenticate(vault, args)
    req = vault.request(session, args.cred, args.reason or "", args.ticket or "", duration)
    if args.json:
        out_json({"id": req.id, "state": req.state, "credential": req.cred_name,
                  "needed_approvals": req.needed})
    else:
        print(req.id)
    return 0


def _request_action(vault: Vault, args: argparse.Namespace,
                    act: Callable[[Session], Checkout], done: Callable[[Checkout], str]) -> int:
    """approve / deny / cancel: authenticate, act, print the checkout or a line."""
    req = act(authenticate(vault, args))
    if args.json:
        out_json(req.to_public(vault.now()))
    else:
        print(done(req))
    return 0


def cmd_approve(vault: Vault, args: argparse.Namespace) -> int:
    return _request_action(
        vault, args, lambda s: vault.approve(s, args.request),
        lambda r: f"{r.id} {r.state} ({len(r.approvals)}/{r.needed} approval(s))")


def cmd_deny(vault: Vault, args: argparse.Namespace) -> int:
    return _request_action(vault, args,
                           lambda s: vault.deny(s, args.request, args.reason or ""),
                           lambda r: f"{r.id} denied")


def cmd_cancel(vault: Vault, args: argparse.Namespace) -> int:
    return _request_action(vault, args, lambda s: vault.cancel(s, args.request),
                           lambda r: f"{r.id} cancelled")


def cmd_reveal(vault: Vault, args: argparse.Namespace) -> int:
    session = authenticate(vault, args)
    secret = vault.reveal(session, args.request)
    req = vault.checkout(args.request)
    if args.json:
        out_json({"id": req.id, "credential": req.cred_name, "secret": secret.reveal(),
                  "lease_expires": iso(req.lease_expires or 0)})
    else:
        sys.stdout.write(secret.reveal() + "\n")
        if sys.stderr.isatty():
            note(f"lease ends {iso(req.lease_expires or 0)}; check in with "
                 f"'glasskey checkin {req.id}'")
    sys.stdout.flush()
    return 0


def cmd_checkin(vault: Vault, args: argparse.Namespace) -> int:
    session = authenticate(vault, args, sweep=False)
    result = vault.checkin(session, args.request)
    if args.json:
        out_json({"id": args.request, "credential": result.credential,
                  "rotation": result.outcome, "version": result.version,
                  "message": result.message or None})
    else:
        print(f"{args.request} checked in; rotation {result.outcome} "
              f"(version {result.version}){': ' + result.message if result.message else ''}")
    return 0 if result.outcome != "failed" else 1


def cmd_apply(vault: Vault, args: argparse.Namespace) -> int:
    session = authenticate(vault, args, sweep=False)
    if args.confirm:
        result = vault.confirm_applied(session, args.cred)
        if args.json:
            out_json({"credential": result.credential, "rotation": result.outcome,
                      "version": result.version})
        else:
            print(f"{result.credential}: applied value confirmed (version {result.version})")
        return 0
    value = vault.reveal_apply(session, args.cred)
    if args.json:
        out_json({"credential": args.cred, "value": value.reveal()})
    else:
        sys.stdout.write(value.reveal() + "\n")
        if sys.stderr.isatty():
            note(f"set this value on the target, then run 'glasskey apply {args.cred} "
                 "--confirm'")
    return 0


def cmd_reconcile(vault: Vault, args: argparse.Namespace) -> int:
    session = authenticate(vault, args, sweep=False)
    result = vault.reconcile(session, args.cred, fresh=args.fresh)
    if args.json:
        out_json({"credential": result.credential, "rotation": result.outcome,
                  "version": result.version, "message": result.message or None})
    else:
        print(f"{result.credential}: {result.outcome} (version {result.version})"
              f"{': ' + result.message if result.message else ''}")
    return 0 if result.outcome != "failed" else 1


def cmd_review(vault: Vault, args: argparse.Namespace) -> int:
    now = vault.now()
    if args.item == "list":
        items = vault.review_queue()
        if args.json:
            out_json([i.to_public(now) for i in items])
        else:
            for i in items:
                flag = " OVERDUE" if i.overdue(now) else ""
                print(f"{i.id}  {i.kind:10} {len(i.reviews)}/{i.required}{flag}  {i.summary}")
            if not items:
                print("nothing waits for review")
        return 0
    if not args.outcome:
        raise UsageError("review ID --outcome ok|concern --note TEXT")
    session = authenticate(vault, args)
    item = vault.review(session, args.item, args.outcome, args.note or "")
    if args.json:
        out_json(item.to_public(now))
    else:
        left = item.required - len(item.reviews)
        print(f"{item.id} reviewed ({args.outcome})" + (
            f"; needs {left} more reviewer(s)" if left > 0 else ""))
    return 0


def cmd_onboard(vault: Vault, args: argparse.Namespace) -> int:
    now = vault.now()
    if args.action == "list":
        items = vault.onboarding_secrets()
        if args.json:
            out_json([c.to_public(now) for c in items])
        else:
            for c in items:
                print(f"{c.id}  {c.cred_name:32} {c.display_state(now)} "
                      f"{c.closed_reason}  by {c.requester}")
        return 0
    if args.action == "issue":
        if not args.identity:
            raise UsageError("onboard issue --identity NAME --reason --ticket --channel")
        expires = parse_duration(args.expires) if args.expires else 24 * 3600
        session = authenticate(vault, args)
        co = vault.issue_onboarding(session, args.identity, args.reason or "",
                                    args.ticket or "", args.channel or "", expires,
                                    args.connector, args.target, template=args.template)
        if args.json:
            out_json({"id": co.id, "credential": co.cred_name, "state": co.state})
        else:
            print(co.id)
        return 0
    if args.action == "activate":
        if not args.id:
            raise UsageError("onboard activate ID")
        session = authenticate(vault, args)
        co = vault.activate_onboarding(session, args.id)
        if args.json:
            out_json(co.to_public(now))
        else:
            print(f"{co.id} activated and revoked")
        return 0
    if args.action == "revoke":
        if not args.id or not args.manual or not (args.note or "").strip():
            raise UsageError("onboard revoke ID --manual --note TEXT (an admin records a "
                             "revocation done by hand, and says how)")
        session = authenticate(vault, args)
        co = vault.revoke_onboarding_manually(session, args.id, args.note or "")
        if args.json:
            out_json(co.to_public(vault.now()))
        else:
            print(f"{co.id} recorded as revoked by hand")
        return 0
    raise UsageError(f"unknown onboard action {args.action!r}")


def cmd_kit(vault: Vault, args: argparse.Namespace) -> int:
    if args.action == "status":
        kit = vault.active_kit()
        if args.json:
            out_json({"active": kit is not None, "fingerprint": kit["fingerprint"]
                      if kit else None})
        else:
            print(f"active kit {kit['id']} fingerprint {kit['fingerprint']}" if kit
                  else "no emergency kit is issued")
        return 0
    if args.action == "issue":
        first = authenticate(vault, args)
        second = second_session(vault, args)
        issued = vault.issue_kit([first, second], progress_printer("giving the kit shares"))
        if args.json:
            out_json({"id": issued.id, "fingerprint": issued.fingerprint,
                      "part_holders": list(issued.holders)})
        else:
            print(f"emergency kit {issued.id} issued, fingerprint {issued.fingerprint}")
            print("It has two parts; nobody holds both. Each holder prints theirs on their "
                  "own terminal, seals it in its own envelope and puts it in the safe:")
            for name in issued.holders:
                print(f"  glasskey kit part --as {name}")
            print("Any earlier kit is burned.")
        return 0
    if args.action == "part":
        session = authenticate(vault, args)
        part = vault.kit_part(session)
        check = str((vault.active_kit() or {}).get("fingerprint", ""))  # drill --kit
        if args.json:
            out_json({"part": part, "check_code": check})
        else:
            print("YOUR PART of the emergency kit — print it, seal it in an envelope with your "
                  "name, put it in the safe. It is erased from the vault now.")
            print(part)
            show_qr(part, sys.stdout)
            print(f"check code (write it on the envelope; 'glasskey drill --kit'): {check}")
        return 0
    if args.action == "burn":
        session = authenticate(vault, args)
        names = vault.burn_kit(session, "exposed")
        if args.json:
            out_json({"burned": True, "to_rotate": names})
        else:
            print(f"kit burned; {len(names)} credential(s) it could open must be rotated: "
                  "run 'glasskey kit sweep'")
        return 0
    if args.action == "sweep":
        session = authenticate(vault, args)
        results = vault.kit_sweep(session, progress_printer("rotating what the kit could open"))
        left = vault.kit_exposure()
        if args.json:
            out_json({"rotated": [r.credential for r in results if r.outcome == "committed"],
                      "left": len(left)})
        else:
            done = sum(1 for r in results if r.outcome == "committed")
            print(f"kit sweep: {done}/{len(results)} rotated; {len(left)} still exposed")
        return 0 if not left else 1
    if args.action == "use":
        if not args.cred or not args.duration:
            raise UsageError("kit use CRED --reason --ticket --duration 30m")
        code: str | None = None
        if args.code_file:
            code = " ".join(read_passphrase(f, "") if f == "-" else read_code_file(f)
                            for f in args.code_file)
        elif interactive():
            code = " ".join(getpass.getpass(f"Kit part {i}: ", stream=sys.stderr)
                            for i in (1, 2))
        if not code:
            raise UsageError("give both kit parts with --code-file (twice, or one file with "
                             "both) or on the terminal")
        from core.emergency import decode_parts

        decode_parts(code)  # a typo or a missing part must not burn a TOTP code
        session = authenticate(vault, args)
        co, secret = vault.emergency_reveal(session, args.cred, code, args.reason or "",
                                            args.ticket or "", parse_duration(args.duration))
        if args.json:
            out_json({"id": co.id, "credential": co.cred_name, "secret": secret.reveal()})
        else:
            sys.stdout.write(secret.reveal() + "\n")
            note(f"EMERGENCY USE {co.id} recorded; the kit is burned; check in with "
                 f"'glasskey checkin {co.id}'")
        return 0
    raise UsageError(f"unknown kit action {args.action!r}")


def cmd_alerts(vault: Vault, args: argparse.Namespace) -> int:
    alerts = vault.alerts()
    if args.json:
        out_json(alerts)
    else:
        for a in alerts:
            print(a)
        if not alerts:
            print("no alerts")
    return 0


def cmd_audit(vault: Vault, args: argparse.Namespace) -> int:
    if args.action == "verify":
        result = vault.verify_audit(incremental=args.incremental,
                                    progress=progress_printer("verifying"))
        if args.json:
            out_json(result.to_doc())
        elif result.ok:
            tail = (f"; a torn tail of {result.torn_tail_bytes} bytes will be quarantined at "
                    "the next write") if result.torn_tail_bytes else ""
            back = (f"; WARNING: entry times run backwards at {len(result.backwards_times)} "
                    f"entries (first: {result.backwards_times[0]})"
                    ) if result.backwards_times else ""
            print(f"audit log intact: {result.entries} entries, {result.signatures} signatures "
                  f"checked ({result.mode}), head {result.head.hash[:16]}{tail}{back}")
        if not result.ok:
            note(f"audit log FAILED verification at entry {result.first_bad}: {result.reason}")
            return 3
        return 0
    if args.action == "export":
        from core import siem
        from core.exports import export

        fmt = args.format or "jsonl"

        def write(out: TextIO) -> int:
            if fmt == "syslog":
                return siem.export_syslog(vault.store.audit, out)
            return export(vault.store.audit, fmt, out)

        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as fh:
                n = write(fh)
            note(f"exported {n} entries to {args.output}")
        else:
            write(sys.stdout)
        return 0
    if args.action == "forward":
        from core import siem

        if not args.to:
            raise UsageError("audit forward --to HOST:PORT [--protocol udp|tcp]")
        host, sep, port = args.to.rpartition(":")
        if not sep or not port.isdigit():
            raise UsageError("--to wants HOST:PORT")
        fwd = siem.forward_new(vault, host, int(port), args.protocol)
        if args.json:
            out_json({"sent": fwd.sent, "first_seq": fwd.first_seq, "last_seq": fwd.last_seq})
        else:
            print(f"forwarded {fwd.sent} entr{'y' if fwd.sent == 1 else 'ies'}")
        return 0
    raise UsageError(f"unknown audit action {args.action!r}")


def cmd_report(vault: Vault, args: argparse.Namespace) -> int:
    from core import report

    if args.kind == "verify":
        if not args.file:
            raise UsageError("report verify FILE (a report written with --output)")
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {args.file} ({type(exc).__name__})") from None
        check = report.verify_report(vault, text, args.file)
        a = check.attestation
        if args.json:
            out_json({"ok": True, "attestation": a.id, "by": a.by, "at": iso(a.at),
                      "since": a.since, "until": a.until, "head_seq": a.entries,
                      "head_hash": a.head_hash, "sha256": check.sha256})
        else:
            print(f"{args.file} matches attestation {a.id}: signed off by {a.by} at "
                  f"{iso(a.at)}, period {a.since} .. {a.until}, audit head seq {a.entries}"
                  + (f" hash {a.head_hash[:16]}..." if a.head_hash else ""))
        return 0
    if args.kind != "custody" or args.file:
        raise UsageError("report custody --since DATE [--until DATE] --format md|html|json")
    if not args.since:
        raise UsageError("--since DATE is required (YYYY-MM-DD)")
    since = report.parse_date(args.since)
    until = report.parse_date(args.until, end=True) if args.until else None
    built = report.build_custody_report(vault, since, until)
    fmt = args.format or "md"
    render = {"md": report.render_markdown, "html": report.render_html,
              "json": report.render_json}[fmt]
    text = render(built)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        note(f"custody report written to {args.output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if args.attest:
        session = authenticate(vault, args, sweep=False)
        att = report.attest(vault, session, text, fmt, since, built.until,
                            head_seq=built.audit.head_seq, head_hash=built.audit.head_hash)
        note(f"period signed off by {session.name} (attestation {att})")
    return 0 if built.audit.ok else 3


def cmd_demo(vault: Vault | None, args: argparse.Namespace) -> int:
    from tui import app as tui_app
    from tui import demo as tui_demo

    root = Path(args.vault) if args.vault else Path(
        __import__("tempfile").mkdtemp(prefix="glasskey-demo-")) / "vault"
    if (root / "vault.json").exists():
        raise UsageError(f"{root} already holds a vault; the demo needs a fresh directory")
    # The demo's witness checkpoints stay beside the throwaway vault, not in $HOME.
    os.environ.setdefault("GLASSKEY_STATE_DIR", str(root.parent / "client-state"))
    info = tui_demo.make_demo_vault(root)
    tui_app.run(root, demo=info)
    return 0


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("--vault", metavar="DIR", help="vault directory "
                        "(default: $GLASSKEY_VAULT, then the user data directory)")
    common.add_argument("--wait", metavar="SECONDS", help="how long to wait for another "
                        "process's hold on the vault lock (default 10)")
    actor = Parser(add_help=False)
    actor.add_argument("--as", dest="as_", metavar="NAME", help="the acting operator")
    actor.add_argument("--totp", metavar="CODE", help="the acting operator's TOTP code")
    actor.add_argument("--passphrase-file", metavar="PATH",
                       help="file holding the passphrase ('-' = first line of stdin)")

    parser = Parser(prog="glasskey", description="Break-glass custody: a dual-control vault. "
                    "With no command, opens the terminal UI.")
    parser.add_argument("--vault", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--open", metavar="REQ", help="open the TUI on a request after unlock")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("init", parents=[common], help="create a vault with its founding "
                       "operators")
    p.add_argument("--operators-file", metavar="F", help="JSON list of {name, roles, "
                   "passphrase, totp_secret?}")
    p.add_argument("--label", default="vault", help="a name shown in authenticator apps")
    p.add_argument("--kdf-seconds", type=float, help="Argon2id calibration target (default "
                   "0.5 s)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("operator", parents=[common, actor], help="list, add, suspend operators")
    p.add_argument("action", choices=["list", "add", "suspend", "reactivate", "remove"])
    p.add_argument("--sweep", action="store_true",
                   help="remove: rotate every credential the leaver could reach")
    p.add_argument("name", nargs="?")
    p.add_argument("--roles", help="comma-separated: requester,approver,admin")
    p.add_argument("--reason")
    p.add_argument("--new-passphrase-file", metavar="PATH",
                   help="the new operator's passphrase")
    p.add_argument("--totp-secret", help="the new operator's TOTP key (base32); generated "
                   "when absent")
    p.add_argument("--with", dest="with_", metavar="NAME", help="second operator (add)")
    p.add_argument("--with-totp", metavar="CODE")
    p.add_argument("--with-passphrase-file", metavar="PATH")
    p.set_defaults(func=cmd_operator)

    p = sub.add_parser("cred", parents=[common, actor], help="add, import, list credentials")
    p.add_argument("action", choices=["add", "import", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--kind", default="break-glass",
                   choices=["break-glass", "batch", "onboarding"])
    p.add_argument("--connector", default="generated")
    p.add_argument("--secret-file", metavar="PATH", help="initial value ('-' = stdin); "
                   "generated when absent")
    p.add_argument("--target", help="where the connector acts (conninfo, LDAP URL, path)")
    p.add_argument("--dn", help="LDAP entry whose password rotates")
    p.add_argument("--admin-service", help="pg_service entry for an admin connection")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="extra non-secret connector option")
    p.add_argument("--k", type=int, choices=[2, 3], help="operators needed (default 2)")
    p.add_argument("--max-duration", help="longest checkout (default 4h)")
    p.add_argument("--length", type=int, help="generated value length (default 32)")
    p.add_argument("--classes", help="lower,upper,digit,symbol")
    p.add_argument("--exclude", help="characters never generated")
    p.add_argument("--file", help="JSON lines to import")
    p.set_defaults(func=cmd_cred)

    p = sub.add_parser("request", parents=[common, actor],
                       help="ask to check out a credential ('request list' lists checkouts, "
                       "'request clear --requester NAME' closes a flood)")
    p.add_argument("cred", metavar="CRED|list|clear")
    p.add_argument("--requester", help="with 'clear': whose open requests to close (admin)")
    p.add_argument("--reason")
    p.add_argument("--ticket")
    p.add_argument("--duration", help="e.g. 30m, 2h, 45s")
    p.add_argument("--all", action="store_true", help="with 'list': closed ones too")
    p.set_defaults(func=cmd_request)

    for name, func, helptext in (
        ("approve", cmd_approve, "countersign a request"),
        ("cancel", cmd_cancel, "withdraw a request before reveal"),
        ("reveal", cmd_reveal, "show the secret of an approved checkout, once"),
        ("checkin", cmd_checkin, "end a checkout and rotate the credential"),
    ):
        p = sub.add_parser(name, parents=[common, actor], help=helptext)
        p.add_argument("request", metavar="REQ")
        p.set_defaults(func=func)
    p = sub.add_parser("deny", parents=[common, actor], help="refuse a request")
    p.add_argument("request", metavar="REQ")
    p.add_argument("--reason")
    p.set_defaults(func=cmd_deny)

    p = sub.add_parser("reconcile", parents=[common, actor],
                       help="finish an interrupted or failed rotation (retry)")
    p.add_argument("cred", metavar="CRED")
    p.add_argument("--fresh", action="store_true", help="roll the pending value back (only "
                   "when the target provably still has the current one) and rotate anew")
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("apply", parents=[common, actor],
                       help="manual targets: fetch the value to apply, then --confirm")
    p.add_argument("cred", metavar="CRED")
    p.add_argument("--confirm", action="store_true", help="the target now has the value")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("review", parents=[common, actor],
                       help="record a post-use review ('review list' shows the queue)")
    p.add_argument("item", metavar="ID|list")
    p.add_argument("--outcome", choices=["ok", "concern"])
    p.add_argument("--note")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("onboard", parents=[common, actor],
                       help="one-time onboarding secrets: issue, activate, revoke, list")
    p.add_argument("action", choices=["issue", "activate", "revoke", "list"])
    p.add_argument("id", nargs="?")
    p.add_argument("--identity", help="who the secret is for")
    p.add_argument("--reason")
    p.add_argument("--ticket")
    p.add_argument("--channel", help="how it will be delivered")
    p.add_argument("--expires", help="validity (default 24h, at most 72h)")
    p.add_argument("--connector", default="generated", help="admins only")
    p.add_argument("--target", help="admins only")
    p.add_argument("--template", help="an onboarding template of the site policy")
    p.add_argument("--manual", action="store_true",
                   help="revoke: record a revocation done by hand (admin)")
    p.add_argument("--note", help="revoke: how it was revoked")
    p.set_defaults(func=cmd_onboard)

    p = sub.add_parser("kit", parents=[common, actor],
                       help="the emergency kit: issue (two operators), use, status")
    p.add_argument("action", choices=["issue", "part", "use", "status", "burn", "sweep"])
    p.add_argument("cred", nargs="?", metavar="CRED")
    p.add_argument("--code-file", metavar="PATH", action="append",
                   help="file holding a kit part, given once per part or once with both "
                   "('-' = stdin; prompted on a terminal). Never on the command line.")
    p.add_argument("--reason")
    p.add_argument("--ticket")
    p.add_argument("--duration")
    p.add_argument("--with", dest="with_", metavar="NAME")
    p.add_argument("--with-totp", metavar="CODE")
    p.add_argument("--with-passphrase-file", metavar="PATH")
    p.set_defaults(func=cmd_kit)

    p = sub.add_parser("alerts", parents=[common], help="what needs attention now")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("audit", parents=[common],
                       help="verify, export or forward (syslog) the audit log")
    p.add_argument("action", choices=["verify", "export", "forward"])
    p.add_argument("--incremental", action="store_true",
                   help="verify: only the entries after this client's last verified head")
    p.add_argument("--format", choices=["jsonl", "csv", "syslog"])
    p.add_argument("--output", metavar="PATH")
    p.add_argument("--to", metavar="HOST:PORT", help="forward: the syslog collector")
    p.add_argument("--protocol", choices=["udp", "tcp"], default="udp")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("report", parents=[common, actor],
                       help="custody review report (md, html, json); --attest signs it off")
    p.add_argument("kind", choices=["custody", "verify"],
                   help="custody: build a report; verify FILE: check it against its attestation")
    p.add_argument("file", nargs="?", metavar="FILE", help="verify: the report file")
    p.add_argument("--since", metavar="DATE")
    p.add_argument("--until", metavar="DATE")
    p.add_argument("--format", choices=["md", "html", "json"], default="md")
    p.add_argument("--output", metavar="PATH")
    p.add_argument("--attest", action="store_true",
                   help="sign off the period as the reviewer (needs --as ...)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", parents=[common], help="a throwaway demo vault, then the TUI")
    p.set_defaults(func=cmd_demo)
    from tui import cli_outage  # issue 14: notify, relay, drill, open

    cli_outage.add_parsers(sub, common, actor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tui import envguard

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # Before anything imports Textual (tui/envguard.py says why); only the
        # TUI loads Textual, so only the TUI warns.
        tui = args.command in (None, "demo", "open")
        envguard.scrub(quiet=not tui)
        if tui:
            envguard.disable_screenshots()
        if args.command is None:
            from tui import app as tui_app

            fsutil.set_lock_identity(command="tui")
            tui_app.run(Path(args.vault) if args.vault else default_vault_dir(),
                        open_request=args.open)
            return 0
        if args.command == "demo":
            return int(args.func(None, args))
        root = Path(args.vault) if args.vault else default_vault_dir()
        action = getattr(args, "action", None)
        fsutil.set_lock_identity(  # names only: never an argument that could be a secret
            command=" ".join(x for x in (args.command, action) if isinstance(x, str)),
            operator=getattr(args, "as_", None))
        vault = Vault(root, lock_timeout=lock_wait(getattr(args, "wait", None)))
        return int(args.func(vault, args))
    except CliUsage as exc:
        note(str(exc))
        return 2
    except GlasskeyError as exc:
        note(f"glasskey: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        note("glasskey: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        if os.environ.get("GLASSKEY_DEBUG") == "1":
            raise
        note(f"glasskey: internal error ({type(exc).__name__}); set GLASSKEY_DEBUG=1 to see "
             "details")
        return EXIT_INTERNAL


def lock_wait(raw: str | None) -> float:
    """``--wait SECONDS``: a finite number of seconds in (0, 3600]."""
    if raw is None:
        return 10.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not (math.isfinite(wait) and 0 < wait <= 3600):
        raise UsageError(f"--wait wants a number of seconds above 0 and at most 3600, "
                         f"not {raw!r}")
    return wait


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
