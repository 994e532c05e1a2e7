"""The ``glasskey`` command line: a thin front over the core services.

DESIGN.md's scripting interface is a contract: every command takes ``--json``
and ``--vault DIR``, before or after its name with the same meaning; commands
that act as an operator take ``--as``, ``--totp`` and ``--passphrase-file`` and
prompt for what is missing when a terminal is attached. Errors are one sentence
on stderr, never a traceback (and, under ``--json``, also ``{"error", "exit"}``
on stdout). Exit codes: 0 ok, 1 refused (policy/authentication), 2 usage,
3 integrity, 4 internal error (a bug: please report it).

Everything printed for a person goes through :func:`core.text.printable`, so a
control character someone typed into a reason or ticket reaches the terminal
as a visible escape, never as a control sequence. Names are checked before
anyone is asked for a passphrase or TOTP code, so a typo does not burn a code.
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

from glasskey.core import fsutil
from glasskey.core.clock import iso
from glasskey.core.connectors import registry
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import (
    GlasskeyError,
    InternalError,
    NotFoundError,
    PolicyError,
    UsageError,
)
from glasskey.core.models import (
    ROLES,
    Checkout,
    Policy,
    check_name,
    format_duration,
    parse_duration,
)
from glasskey.core.operators import Enrolment, OperatorSpec
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.storage import open_store
from glasskey.core.text import cap, cap_all, printable
from glasskey.core.vault import Vault
from glasskey.tui.hardening import harden_process

EXIT_INTERNAL = InternalError.exit_code


class CliUsage(Exception):
    """argparse errors, turned into exit code 2 with one sentence."""


class Parser(argparse.ArgumentParser):
    subcommands: dict[str, Parser]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: '--totp-secret' must never silently mean '--totp-secret-file',
        # and a prefix that is valid today may become ambiguous tomorrow.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.subcommands = {}

    def error(self, message: str) -> NoReturn:
        raise CliUsage(f"{self.prog}: {message}")


# -- output helpers --------------------------------------------------------------------------
#: Keys of JSON documents that hold a time: written as ISO 8601 UTC, never epoch seconds.
TIME_KEYS = frozenset({"created", "revealed_at", "lease_expires", "ended_at", "expires_at",
                       "since", "locked_until", "rotated_at", "at", "expires", "time"})


def _time_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return iso(value) if value > 0 else None


def isoize(doc: Any) -> Any:
    """Epoch-second times in ``doc`` (by key, see TIME_KEYS) as ISO 8601 UTC strings."""
    if isinstance(doc, dict):
        return {k: _time_value(v) if k in TIME_KEYS else isoize(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [isoize(v) for v in doc]
    return doc


def out_json(doc: Any) -> None:
    # json.dumps escapes every control character (\u001b), so JSON output is inert too.
    sys.stdout.write(json.dumps(isoize(doc), indent=2, sort_keys=True, default=str) + "\n")


def note(text: str) -> None:
    sys.stderr.write(printable(text, keep_newlines=True) + "\n")


def emit(text: str) -> None:
    """One line for a person on stdout, with any control character visibly escaped."""
    sys.stdout.write(printable(text) + "\n")


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


def known_operator(vault: Vault, name: str) -> str:
    """Refuse an unknown name before anyone types a passphrase or spends a TOTP code."""
    if name not in {o.name for o in vault.operators()}:
        raise NotFoundError(f"there is no operator named {name!r}")
    return name


def authenticate(vault: Vault, args: argparse.Namespace, *, sweep: bool = True) -> Session:
    name = known_operator(vault, read_name(args.as_))
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
    known_operator(vault, name)
    passphrase = read_passphrase(args.with_passphrase_file, f"Passphrase for {name}: ")
    code = read_totp(args.with_totp, name)
    return vault.unlock(name, passphrase, code)


# -- commands --------------------------------------------------------------------------------
def cmd_init(vault: Vault, args: argparse.Namespace) -> int:
    cap(args.label, "label")
    specs: list[OperatorSpec] = []
    if args.founder_file and args.operators_file:
        raise UsageError("give the founders either as --founder-file (one per founder) or "
                         "as one --operators-file, not both")
    if args.founder_file:
        specs = [OperatorSpec.from_doc(read_json_file(f, "founder file"))
                 for f in args.founder_file]
    elif args.operators_file:
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
        if interactive():
            note("note: whoever wrote this file knows every founder's passphrase; "
                 "--founder-file (one per founder) or the prompts avoid that")
    elif interactive():
        specs = prompt_founders()
    else:
        raise UsageError("give the founding operators with --operators-file F")
    kdf_params = None
    if args.kdf_seconds is not None:
        from glasskey.core.crypto import kdf

        kdf_params = kdf.calibrate(args.kdf_seconds)
    enrolments = vault.initialise(specs, label=args.label, kdf_params=kdf_params)
    if interactive() and not args.json:
        for e in enrolments:
            if e.status == "enrolling":
                confirm_enrolment(vault, e, next(s for s in specs if s.name == e.name))
    report_enrolments(args, vault, enrolments)
    return 0


def read_json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"the {what} {path} is not valid JSON") from None


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


def vault_name(vault: Vault) -> str:
    """The vault as the user named it: its directory, or its database (no role)."""
    return str(getattr(vault.store, "location", vault.root))


def report_enrolments(args: argparse.Namespace, vault: Vault, enrolments: list[Enrolment]
                      ) -> None:
    pending = [e for e in enrolments if e.status == "enrolling"]
    if args.json:
        out_json({"vault": vault_name(vault), "vault_id": vault.vault_id, "operators": [
            {"name": e.name, "status": e.status,
             **({"totp_uri": e.uri, "totp_secret": e.totp_secret}
                if e.status == "enrolling" else {})}
            for e in enrolments]})
        return
    emit(f"vault created at {vault_name(vault)}")
    if pending and not interactive():
        for e in pending:
            emit(f"{e.name}: enrol this TOTP key, then unlock once to activate: {e.uri}")


def read_secret_text(path: str, what: str) -> str:
    """One line of secret text from a file or stdin ('-'): never from argv, which any
    local user can read in /proc/PID/cmdline."""
    try:
        data = sys.stdin.readline() if path == "-" else Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the {what} file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the {what} file is not UTF-8 text") from None
    return data.strip()


def cmd_operator(vault: Vault, args: argparse.Namespace) -> int:
    if args.totp_secret_argv is not None:
        raise UsageError("a TOTP key is never taken on the command line (other users can read "
                         "it there): use --totp-secret-file PATH, or - for stdin")
    if args.action == "list":
        ops = vault.operators()
        if args.json:
            out_json([o.to_public() for o in ops])
        else:
            for o in ops:
                lock = " (locked)" if o.locked_until > vault.now() else ""
                emit(f"{o.name:20} {o.status:10} {','.join(o.roles)}{lock}")
        return 0
    if args.action == "add":
        if not args.name or not args.roles:
            raise UsageError("operator add NAME --roles R[,R] needs a name and roles")
        check_name(args.name, "operator")
        roles = tuple(r.strip() for r in args.roles.split(","))
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise UsageError(f"unknown role {unknown[0]!r}: use {', '.join(ROLES)}")
        if args.with_:
            known_operator(vault, args.with_)
        if args.totp_secret_file == "-" and args.new_passphrase_file == "-":
            raise UsageError("only one of --new-passphrase-file and --totp-secret-file can "
                             "read stdin")
        seed = read_secret_text(args.totp_secret_file, "TOTP key") \
            if args.totp_secret_file else None
        first = authenticate(vault, args)
        second = second_session(vault, args)
        new_pass = read_passphrase(args.new_passphrase_file, f"Passphrase for {args.name}: ")
        spec = OperatorSpec(args.name, roles, new_pass, seed)
        enrolment = vault.add_operator([first, second], spec,
                                       progress_printer("re-sealing shares"))
        if args.json:
            out_json({"name": enrolment.name, "status": enrolment.status,
                      **({"totp_uri": enrolment.uri, "totp_secret": enrolment.totp_secret}
                         if enrolment.status == "enrolling" else {})})
        else:
            emit(f"operator {enrolment.name} added ({enrolment.status})")
            if enrolment.status == "enrolling":
                show_qr(enrolment.uri, sys.stdout)
                emit(f"key: {enrolment.totp_secret}")
                emit("the operator becomes active at their first successful unlock")
        return 0
    if args.action == "passwd":
        name = known_operator(vault, read_name(args.as_))
        if args.passphrase_file == "-" and args.new_passphrase_file == "-":
            raise UsageError("only one of --passphrase-file and --new-passphrase-file can "
                             "read stdin")
        old = read_passphrase(args.passphrase_file, f"Current passphrase for {name}: ")
        code = read_totp(args.totp, name)
        new = read_passphrase(args.new_passphrase_file, f"New passphrase for {name}: ")
        if args.new_passphrase_file is None and interactive():
            again = getpass.getpass("Once more: ", stream=sys.stderr)
            if again != new:
                raise UsageError("the two new passphrases differ; nothing was changed")
        vault.change_passphrase(name, old, code, new)
        if args.json:
            out_json({"name": name, "passphrase": "changed"})
        else:
            emit(f"passphrase of {name} changed")
        return 0
    if args.action == "totp-reset":
        if not args.name:
            raise UsageError("operator totp-reset NAME --with NAME2 (NAME gives their "
                             "passphrase; NAME2 countersigns with passphrase and TOTP)")
        name = known_operator(vault, args.name)
        if args.with_:
            known_operator(vault, args.with_)
        passphrase = read_passphrase(args.passphrase_file, f"Passphrase for {name}: ")
        witness = second_session(vault, args)
        enrolment = vault.reset_totp(witness, name, passphrase)
        if args.json:
            out_json({"name": name, "totp_uri": enrolment.uri,
                      "totp_secret": enrolment.totp_secret})
        else:
            emit(f"new TOTP key for {name} (shown once; the old one no longer works):")
            show_qr(enrolment.uri, sys.stdout)
            emit(f"key: {enrolment.totp_secret}")
        return 0
    if args.action == "remove":
        if not args.name:
            raise UsageError("operator remove NAME --with SECOND ...")
        known_operator(vault, args.name)
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
            emit(f"operator {args.name} removed; every data key re-split without them")
            if swept:
                done = sum(1 for r in swept if r.outcome == "committed")
                emit(f"leaver sweep: {done}/{len(swept)} rotated")
                for r in swept:
                    if r.outcome != "committed":
                        emit(f"  {r.credential}: {r.outcome} {r.message}")
            elif reachable:
                emit(f"{len(reachable)} credential(s) they could reach should be rotated: "
                      f"re-run with --sweep, or 'glasskey rotate' them")
        return 0
    if args.action in ("suspend", "reactivate"):
        if not args.name:
            raise UsageError(f"operator {args.action} NAME")
        known_operator(vault, args.name)
        cap(args.reason or "", "reason")
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
            emit(f"operator {args.name} {args.action}d" if args.action == "suspend"
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
                emit(f"{r['name']:28} {r['kind']:12} {state}{holder}  v{r['version']} "
                      f"rotated {r['rotated_at']}")
        return 0
    if args.action == "add":
        if not args.name:
            raise UsageError("cred add NAME needs a name")
        check_name(args.name, "credential")
        cap_all(target=args.target)
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
            emit(f"credential {cred.name} added (version {cred.version})")
        return 0
    if args.action == "import":
        if bool(args.file) == bool(args.from_kdbx):
            raise UsageError("cred import takes one source: --file F.jsonl or --from-kdbx F")
        specs = read_kdbx(args) if args.from_kdbx else read_import(args.file)
        session = authenticate(vault, args)
        creds = vault.import_credentials(session, specs, progress_printer("importing"))
        if args.json:
            out_json({"imported": len(creds)})
        else:
            emit(f"imported {len(creds)} credential(s)")
        return 0
    raise UsageError(f"unknown cred action {args.action!r}")


def read_kdbx(args: argparse.Namespace) -> list[CredentialSpec]:
    """KeePass/KeePassXC entries as credentials: title -> name, password -> secret.

    What a team moving its break-glass file off KeePassXC runs first. The values are
    real passwords on systems glasskey does not know how to reach, so the entries get
    the ``manual`` connector (a rotation asks a person to apply the new value).
    Entries without a password and those in the recycle bin are skipped; a title that
    is not a valid credential name stops the import before anything is written.
    """
    try:
        from pykeepass import PyKeePass
        from pykeepass.exceptions import CredentialsError
    except ImportError:
        raise UsageError("--from-kdbx needs pykeepass: pip install 'glasskey[kdbx]'") from None
    if args.kdbx_password_file:
        password: str | None = read_passphrase(args.kdbx_password_file, "")
    elif interactive():
        password = getpass.getpass("KeePass master password: ", stream=sys.stderr)
    elif args.kdbx_keyfile:
        password = None
    else:
        raise UsageError("give the database's master password with --kdbx-password-file PATH "
                         "(or - for stdin)")
    try:
        kp = PyKeePass(args.from_kdbx, password=password, keyfile=args.kdbx_keyfile)
    except CredentialsError:
        raise UsageError("the KeePass master password or key file is wrong") from None
    except FileNotFoundError:
        raise UsageError(f"cannot read {args.from_kdbx}: no such file") from None
    except Exception as exc:  # pykeepass raises assorted parse errors on a bad file
        raise UsageError(f"{args.from_kdbx} is not a KeePass database I can read "
                         f"({type(exc).__name__})") from None
    finally:
        del password
    bin_uuid = kp.recyclebin_group.uuid if kp.recyclebin_group is not None else None
    specs: list[CredentialSpec] = []
    seen: set[str] = set()
    for entry in kp.entries:
        group = entry.group
        in_bin = False
        while group is not None:
            if bin_uuid is not None and group.uuid == bin_uuid:
                in_bin = True
                break
            group = group.parentgroup
        if in_bin or not entry.password:
            continue
        name = (entry.title or "").strip()
        check_name(name, "credential")  # the message shows the title escaped (repr)
        if name in seen:
            raise UsageError(f"two KeePass entries are titled {name!r}; rename one first")
        seen.add(name)
        specs.append(CredentialSpec(name=name, kind="break-glass", connector="manual",
                                    secret=SecretValue(entry.password)))
    if not specs:
        raise UsageError(f"{args.from_kdbx} holds no entry with a password")
    return specs


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
    if args.cred == "list" and not args.cred_opt:
        items = vault.checkouts(open_only=not args.all)
        now = vault.now()
        if args.json:
            out_json([c.to_public(now) for c in items])
        else:
            for c in items:
                emit(checkout_line(c, now))
            if not items:
                emit("no open checkouts" if not args.all else "no checkouts")
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
            emit(f"{len(closed)} request(s) of {args.requester} closed"
                  + (f"; {len(skipped)} revealed checkout(s) left to check-in"
                     if skipped else ""))
        return 0
    cred_name = args.cred_opt or args.cred
    if not cred_name:
        raise UsageError("say which credential: request CRED (or --cred NAME), or 'request list'")
    vault.credential(cred_name)  # a typo is refused before a TOTP code is spent
    cap_all(reason=args.reason, ticket=args.ticket)
    if not args.duration:
        raise UsageError("--duration is required (e.g. 30m)")
    duration = parse_duration(args.duration)
    session = authenticate(vault, args)
    req = vault.request(session, cred_name, args.reason or "", args.ticket or "", duration)
    if args.json:
        out_json({"id": req.id, "state": req.state, "credential": req.cred_name,
                  "needed_approvals": req.needed})
    else:
        emit(req.id)
    return 0


def _request_action(vault: Vault, args: argparse.Namespace,
                    act: Callable[[Session], Checkout], done: Callable[[Checkout], str]) -> int:
    """approve / deny / cancel: authenticate, act, print the checkout or a line."""
    vault.checkout(args.request)  # an unknown id is refused before a TOTP code is spent
    req = act(authenticate(vault, args))
    if args.json:
        out_json(req.to_public(vault.now()))
    else:
        emit(done(req))
    return 0


def cmd_approve(vault: Vault, args: argparse.Namespace) -> int:
    return _request_action(
        vault, args, lambda s: vault.approve(s, args.request),
        lambda r: f"{r.id} {r.state} ({len(r.approvals)}/{r.needed} approval(s))")


def cmd_deny(vault: Vault, args: argparse.Namespace) -> int:
    cap(args.reason or "", "deny reason")
    return _request_action(vault, args,
                           lambda s: vault.deny(s, args.request, args.reason or ""),
                           lambda r: f"{r.id} denied")


def cmd_cancel(vault: Vault, args: argparse.Namespace) -> int:
    return _request_action(vault, args, lambda s: vault.cancel(s, args.request),
                           lambda r: f"{r.id} cancelled")


def cmd_reveal(vault: Vault, args: argparse.Namespace) -> int:
    vault.checkout(args.request)
    session = authenticate(vault, args)
    # --again: the holder, re-authenticated, during their own lease (checkout.redisplayed).
    secret = vault.redisplay(session, args.request) if args.again \
        else vault.reveal(session, args.request)
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


def cmd_extend(vault: Vault, args: argparse.Namespace) -> int:
    vault.checkout(args.request)
    extra = parse_duration(args.by)
    session = authenticate(vault, args)
    co = vault.extend_lease(session, args.request, extra)
    if args.json:
        out_json(co.to_public(vault.now()))
    else:
        emit(f"{co.id} lease extended to {iso(co.lease_expires or 0)}")
    return 0


def cmd_checkin(vault: Vault, args: argparse.Namespace) -> int:
    vault.checkout(args.request)
    session = authenticate(vault, args, sweep=False)
    result = vault.checkin(session, args.request)
    if args.json:
        out_json({"id": args.request, "credential": result.credential,
                  "rotation": result.outcome, "version": result.version,
                  "message": result.message or None})
    else:
        emit(f"{args.request} checked in; rotation {result.outcome} "
              f"(version {result.version}){': ' + result.message if result.message else ''}")
    return 0 if result.outcome != "failed" else 1


def cmd_apply(vault: Vault, args: argparse.Namespace) -> int:
    vault.credential(args.cred)
    session = authenticate(vault, args, sweep=False)
    if args.confirm:
        result = vault.confirm_applied(session, args.cred)
        if args.json:
            out_json({"credential": result.credential, "rotation": result.outcome,
                      "version": result.version})
        else:
            emit(f"{result.credential}: applied value confirmed (version {result.version})")
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
    vault.credential(args.cred)
    session = authenticate(vault, args, sweep=False)
    result = vault.reconcile(session, args.cred, fresh=args.fresh)
    if args.json:
        out_json({"credential": result.credential, "rotation": result.outcome,
                  "version": result.version, "message": result.message or None})
    else:
        emit(f"{result.credential}: {result.outcome} (version {result.version})"
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
                emit(f"{i.id}  {i.kind:10} {len(i.reviews)}/{i.required}{flag}  {i.summary}")
            if not items:
                emit("nothing waits for review")
        return 0
    if not args.outcome:
        raise UsageError("review ID --outcome ok|concern --note TEXT")
    cap_all(note=args.note)
    if args.item not in {i.id for i in vault.review_queue()}:
        # the core's own sentence, before a TOTP code is spent on it
        raise PolicyError(f"{args.item} is not waiting for review")
    session = authenticate(vault, args)
    item = vault.review(session, args.item, args.outcome, args.note or "")
    if args.json:
        out_json(item.to_public(now))
    else:
        left = item.required - len(item.reviews)
        emit(f"{item.id} reviewed ({args.outcome})" + (
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
                emit(f"{c.id}  {c.cred_name:32} {c.display_state(now)} "
                      f"{c.closed_reason}  by {c.requester}")
        return 0
    if args.action == "issue":
        if not args.identity:
            raise UsageError("onboard issue --identity NAME --reason --ticket --channel")
        cap_all(identity=args.identity, reason=args.reason, ticket=args.ticket,
                channel=args.channel, target=args.target)
        check_name(args.identity, "identity")
        expires = parse_duration(args.expires) if args.expires else 24 * 3600
        session = authenticate(vault, args)
        co = vault.issue_onboarding(session, args.identity, args.reason or "",
                                    args.ticket or "", args.channel or "", expires,
                                    args.connector, args.target, template=args.template)
        if args.json:
            out_json({"id": co.id, "credential": co.cred_name, "state": co.state})
        else:
            emit(co.id)
        return 0
    if args.action == "activate":
        if not args.id:
            raise UsageError("onboard activate ID")
        vault.checkout(args.id)
        session = authenticate(vault, args)
        co = vault.activate_onboarding(session, args.id)
        if args.json:
            out_json(co.to_public(now))
        else:
            emit(f"{co.id} activated and revoked")
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
            emit(f"{co.id} recorded as revoked by hand")
        return 0
    raise UsageError(f"unknown onboard action {args.action!r}")


def cmd_kit(vault: Vault, args: argparse.Namespace) -> int:
    if args.action == "status":
        kit = vault.active_kit()
        if args.json:
            out_json({"active": kit is not None, "fingerprint": kit["fingerprint"]
                      if kit else None})
        else:
            emit(f"active kit {kit['id']} fingerprint {kit['fingerprint']}" if kit
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
            emit(f"emergency kit {issued.id} issued, fingerprint {issued.fingerprint}")
            emit("It has two parts; nobody holds both. Each holder prints theirs on their "
                  "own terminal, seals it in its own envelope and puts it in the safe:")
            for name in issued.holders:
                emit(f"  glasskey kit part --as {name}")
            emit("Any earlier kit is burned.")
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
            emit(f"check code (write it on the envelope; 'glasskey drill --kit'): {check}")
        return 0
    if args.action == "burn":
        session = authenticate(vault, args)
        names = vault.burn_kit(session, "exposed")
        if args.json:
            out_json({"burned": True, "to_rotate": names})
        else:
            emit(f"kit burned; {len(names)} credential(s) it could open must be rotated: "
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
            emit(f"kit sweep: {done}/{len(results)} rotated; {len(left)} still exposed")
        return 0 if not left else 1
    if args.action == "use":
        if not args.cred or not args.duration:
            raise UsageError("kit use CRED --reason --ticket --duration 30m")
        vault.credential(args.cred)
        cap_all(reason=args.reason, ticket=args.ticket)
        parse_duration(args.duration)
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
        from glasskey.core.emergency import decode_parts

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
            emit(a)
        if not alerts:
            emit("no alerts")
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
            emit(f"audit log intact: {result.entries} entries, {result.signatures} signatures "
                  f"checked ({result.mode}), head {result.head.hash[:16]}{tail}{back}")
        if not result.ok:
            note(f"audit log FAILED verification at entry {result.first_bad}: {result.reason}")
            return 3
        return 0
    if args.action == "export":
        from glasskey.core import siem
        from glasskey.core.exports import export

        fmt = args.format or "jsonl"

        def write(out: TextIO) -> int:
            if fmt == "syslog":
                return siem.export_syslog(vault.audit_lines(), out)
            return export(vault.audit_lines(), fmt, out)

        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as fh:
                n = write(fh)
            note(f"exported {n} entries to {args.output}")
        else:
            write(sys.stdout)
        return 0
    if args.action == "forward":
        from glasskey.core import siem

        if not args.to:
            raise UsageError("audit forward --to HOST:PORT [--protocol udp|tcp]")
        host, sep, port = args.to.rpartition(":")
        if not sep or not port.isdigit():
            raise UsageError("--to wants HOST:PORT")
        fwd = siem.forward_new(vault, host, int(port), args.protocol)
        if args.json:
            out_json({"sent": fwd.sent, "first_seq": fwd.first_seq, "last_seq": fwd.last_seq})
        else:
            emit(f"forwarded {fwd.sent} entr{'y' if fwd.sent == 1 else 'ies'}")
        return 0
    raise UsageError(f"unknown audit action {args.action!r}")


def cmd_report(vault: Vault, args: argparse.Namespace) -> int:
    from glasskey.core import report

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
            emit(f"{args.file} matches attestation {a.id}: signed off by {a.by} at "
                  f"{iso(a.at)}, period {a.since} .. {a.until}, audit head seq {a.entries}"
                  + (f" hash {a.head_hash[:16]}..." if a.head_hash else ""))
        return 0
    if args.kind != "custody" or args.file or not args.since:
        raise UsageError("report custody --since DATE [--until DATE] --format md|html|json")
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
    from glasskey.tui import app as tui_app
    from glasskey.tui import demo as tui_demo

    root = Path(args.vault) if args.vault else Path(
        __import__("tempfile").mkdtemp(prefix="glasskey-demo-")) / "vault"
    if (root / "vault.json").exists():
        raise UsageError(f"{root} already holds a vault; the demo needs a fresh directory")
    # The demo's witness checkpoints stay beside the throwaway vault, not in $HOME.
    os.environ.setdefault("GLASSKEY_STATE_DIR", str(root.parent / "client-state"))
    info = tui_demo.make_demo_vault(root)
    note(f"demo vault at {root}\nsecond terminal (another operator): {info.second_terminal()}")
    tui_app.run(root, demo=info)
    note(f"the demo vault stays at {root} (delete it when done)")
    return 0


# -- parser ------------------------------------------------------------------------------------
#: Per command: a one-line description and an example, shown by ``glasskey CMD --help``.
DOCS: dict[str, tuple[str, str]] = {
    "init": ("Create a vault with its founding operators (at least two).",
             "glasskey init --operators-file ops.json --json"),
    "operator": ("List, add, suspend, reactivate or remove operators; change your own "
                 "passphrase (passwd) or TOTP key (totp-reset, countersigned).",
                 "glasskey operator add carol --roles approver --as bob --with alice"),
    "cred": ("Add, import or list credentials.",
             "glasskey cred add prod-db-root --connector postgres --target 'host=db1' --as bob"),
    "request": ("Ask to check out a credential; 'request list' lists checkouts. A credential "
                "literally named 'list' is requested with --cred list (or: request -- list).",
                "glasskey request prod-db-root --reason 'primary down' --ticket INC-1 "
                "--duration 30m --as alice"),
    "approve": ("Countersign a request.", "glasskey approve r-1a2b3c --as bob"),
    "cancel": ("Withdraw a request before its secret is revealed.",
               "glasskey cancel r-1a2b3c --as alice"),
    "reveal": ("Show the secret of an approved checkout, once.",
               "glasskey reveal r-1a2b3c --as alice"),
    "extend": ("Lengthen your own lease, up to the credential's maximum (audited).",
               "glasskey extend r-1a2b3c --by 30m --as alice"),
    "checkin": ("End a checkout and rotate the credential.",
                "glasskey checkin r-1a2b3c --as alice"),
    "deny": ("Refuse a request, with a reason the requester sees.",
             "glasskey deny r-1a2b3c --reason 'use the read replica' --as bob"),
    "reconcile": ("Finish an interrupted or failed rotation (retry).",
                  "glasskey reconcile prod-db-root --as bob"),
    "apply": ("Manual targets: fetch the value to apply, then --confirm.",
              "glasskey apply hsm-admin --as bob && glasskey apply hsm-admin --confirm --as bob"),
    "review": ("Record a post-use review; 'review list' shows the queue.",
               "glasskey review v-1a2b3c --outcome ok --note 'matches INC-1' --as carol"),
    "onboard": ("One-time onboarding secrets: issue, activate, list.",
                "glasskey onboard issue --identity dave --reason 'new hire' --ticket HR-7 "
                "--channel 'in person' --as bob"),
    "kit": ("The emergency kit: issue (two operators), use, status.",
            "glasskey kit use prod-db-root --code-file - --reason 'nobody reachable' "
            "--ticket INC-1 --duration 30m --as alice"),
    "alerts": ("What needs attention now.", "glasskey alerts --json"),
    "audit": ("Verify, export or forward (syslog) the audit log.",
              "glasskey audit verify"),
    "report": ("Custody review report (md, html, json); --attest signs it off.",
               "glasskey report custody --since 2026-01-01 --format html --output r.html"),
    "demo": ("A throwaway demo vault, then the terminal UI.", "glasskey demo"),
    "completion": ("Print a shell completion script for bash, zsh or fish.",
                   "glasskey completion bash > /etc/bash_completion.d/glasskey"),
}

ACTOR = frozenset({"as_", "totp", "passphrase_file"})
SECOND = frozenset({"with_", "with_totp", "with_passphrase_file"})
#: (command, action) -> the options that mean something there. Anything else given is
#: refused (exit 2): an option that is silently ignored is an option someone relied on.
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("operator", "list"): frozenset(),
    ("operator", "add"): ACTOR | SECOND | {"roles", "new_passphrase_file", "totp_secret_file",
                                           "totp_secret_argv"},
    ("operator", "remove"): ACTOR | SECOND | {"sweep"},
    ("operator", "passwd"): ACTOR | {"new_passphrase_file"},
    ("operator", "totp-reset"): frozenset({"passphrase_file"}) | SECOND,
    ("operator", "suspend"): ACTOR | SECOND | {"reason"},
    ("operator", "reactivate"): ACTOR | SECOND,
    ("cred", "list"): frozenset(),
    ("cred", "add"): ACTOR | {"kind", "connector", "secret_file", "target", "dn",
                              "admin_service", "option", "k", "max_duration", "length",
                              "classes", "exclude"},
    ("cred", "import"): ACTOR | {"file", "from_kdbx", "kdbx_password_file", "kdbx_keyfile"},
    ("request", "list"): frozenset({"all"}),
    ("request", "clear"): ACTOR | {"requester", "reason"},
    ("request", "*"): ACTOR | {"reason", "ticket", "duration", "cred_opt"},
    ("review", "list"): frozenset(),
    ("review", "*"): ACTOR | {"outcome", "note"},
    ("onboard", "list"): frozenset(),
    ("onboard", "issue"): ACTOR | {"identity", "reason", "ticket", "channel", "expires",
                                   "connector", "target", "template"},
    ("onboard", "activate"): ACTOR,
    ("onboard", "revoke"): ACTOR | {"manual", "note"},
    ("kit", "status"): frozenset(),
    ("kit", "issue"): ACTOR | SECOND,
    ("kit", "part"): ACTOR,
    ("kit", "burn"): ACTOR,
    ("kit", "sweep"): ACTOR,
    ("kit", "use"): ACTOR | {"code_file", "reason", "ticket", "duration"},
    ("audit", "verify"): frozenset({"incremental"}),
    ("audit", "export"): frozenset({"format", "output"}),
    ("audit", "forward"): frozenset({"to", "protocol"}),
}
#: Positional arguments that make no sense for an action (``operator list NAME``).
NO_POSITIONAL: dict[tuple[str, str], str] = {
    ("operator", "list"): "name", ("operator", "passwd"): "name", ("cred", "list"): "name",
    ("onboard", "list"): "id",
    ("onboard", "issue"): "id", ("kit", "status"): "cred", ("kit", "issue"): "cred",
    ("kit", "part"): "cred", ("kit", "burn"): "cred", ("kit", "sweep"): "cred",
}


def action_of(args: argparse.Namespace) -> str:
    if args.command == "request":
        if args.cred in ("list", "clear") and not args.cred_opt:
            return str(args.cred)
        return "*"
    if args.command == "review":
        return "list" if args.item == "list" else "*"
    return str(getattr(args, "action", "") or "")


def check_options(parser: Parser, args: argparse.Namespace) -> None:
    """Refuse options that belong to another action of the same command (exit 2)."""
    action = action_of(args)
    key = (args.command, action)
    shown = f"{args.command} {action}" if action != "*" else args.command
    positional = NO_POSITIONAL.get(key)
    if positional and getattr(args, positional, None):
        raise UsageError(f"'{shown}' takes no {positional} argument")
    allowed = ALLOWED.get(key)
    if allowed is None:
        return
    sub = parser.subcommands[args.command]
    for act in sub._actions:
        if not act.option_strings or act.dest in ("help", "json", "vault", "wait"):
            continue
        if act.dest not in allowed and getattr(args, act.dest, None) not in (None, act.default):
            raise UsageError(f"{act.option_strings[0]} does not apply to '{shown}'")


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
                    "With no command, opens the terminal UI. --vault and --json may come "
                    "before or after the command.")
    parser.add_argument("--vault", dest="g_vault", metavar="DIR", help="vault directory "
                        "(default: $GLASSKEY_VAULT, then the user data directory)")
    parser.add_argument("--json", dest="g_json", action="store_true",
                        help="machine-readable output on stdout")
    parser.add_argument("--version", action="version", version=f"glasskey {version()}")
    parser.add_argument("--open", metavar="REQ", help="open the TUI on a request after unlock")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, *parents: Parser) -> Parser:
        description, example = DOCS[name]
        p = sub.add_parser(name, parents=list(parents), help=description.split(";")[0]
                           .split(". ")[0].rstrip("."),
                           description=description, epilog=f"example:\n  {example}")
        parser.subcommands[name] = p
        return p

    p = command("init", common)
    p.add_argument("--operators-file", metavar="F", help="JSON list of {name, roles, "
                   "passphrase, totp_secret?} (for scripts and tests: whoever writes it knows "
                   "every founder's factors)")
    p.add_argument("--founder-file", metavar="F", action="append",
                   help="one founder's own JSON {name, roles, passphrase, totp_secret?}, "
                   "written by that founder; give it once per founder")
    p.add_argument("--label", default="vault", help="a name shown in authenticator apps")
    p.add_argument("--kdf-seconds", type=float, help="Argon2id calibration target (default "
                   "0.5 s)")
    p.set_defaults(func=cmd_init)

    p = command("operator", common, actor)
    p.add_argument("action", choices=["list", "add", "suspend", "reactivate", "remove",
                                      "passwd", "totp-reset"])
    p.add_argument("--sweep", action="store_true",
                   help="remove: rotate every credential the leaver could reach")
    p.add_argument("name", nargs="?", help="the operator (required except for list)")
    p.add_argument("--roles", help="add (required): comma-separated requester,approver,admin")
    p.add_argument("--reason", help="suspend: why")
    p.add_argument("--new-passphrase-file", metavar="PATH",
                   help="add: the new operator's passphrase; passwd: your new one ('-' = stdin)")
    p.add_argument("--totp-secret-file", metavar="PATH",
                   help="add: file holding the new operator's TOTP key (base32; '-' = stdin); "
                   "generated when absent. Never on the command line.")
    p.add_argument("--totp-secret", dest="totp_secret_argv", help=argparse.SUPPRESS)
    p.add_argument("--with", dest="with_", metavar="NAME",
                   help="second operator (add, remove, suspend, reactivate, totp-reset)")
    p.add_argument("--with-totp", metavar="CODE")
    p.add_argument("--with-passphrase-file", metavar="PATH")
    p.set_defaults(func=cmd_operator)

    p = command("cred", common, actor)
    p.add_argument("action", choices=["add", "import", "list"])
    p.add_argument("name", nargs="?", help="add: the credential's name (required)")
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
    p.add_argument("--file", help="import: JSON lines to import ('-' = stdin)")
    p.add_argument("--from-kdbx", metavar="FILE", help="import: a KeePass/KeePassXC database "
                   "(title -> name, password -> secret; the manual connector)")
    p.add_argument("--kdbx-password-file", metavar="PATH", help="import: the database's "
                   "master password ('-' = stdin; prompted on a terminal)")
    p.add_argument("--kdbx-keyfile", metavar="PATH", help="import: the database's key file")
    p.set_defaults(func=cmd_cred)

    p = command("request", common, actor)
    p.add_argument("cred", metavar="CRED|list|clear", nargs="?",
                   help="the credential, 'list' to list checkouts, or 'clear' to close a "
                   "requester's flood (admin)")
    p.add_argument("--cred", dest="cred_opt", metavar="NAME",
                   help="the credential, named explicitly (any name, even 'list')")
    p.add_argument("--requester", help="with 'clear': whose open requests to close (admin)")
    p.add_argument("--reason", help="why (required)")
    p.add_argument("--ticket", help="the incident or change reference (required)")
    p.add_argument("--duration", help="lease length (required): 90s, 30m, 1h30m, 2h")
    p.add_argument("--all", action="store_true", help="with 'list': closed ones too")
    p.set_defaults(func=cmd_request)

    for name, func in (("approve", cmd_approve), ("cancel", cmd_cancel),
                       ("reveal", cmd_reveal), ("checkin", cmd_checkin)):
        p = command(name, common, actor)
        p.add_argument("request", metavar="REQ", help="the request id")
        p.set_defaults(func=func)
        if name == "reveal":
            p.add_argument("--again", action="store_true", help="the holder, during their own "
                           "lease: show it again (audited as a re-display, not a release)")
    p = command("extend", common, actor)
    p.add_argument("request", metavar="REQ", help="the request id")
    p.add_argument("--by", required=True, metavar="DURATION",
                   help="how much longer (required): 90s, 30m, 1h30m, 2h")
    p.set_defaults(func=cmd_extend)
    p = command("deny", common, actor)
    p.add_argument("request", metavar="REQ", help="the request id")
    p.add_argument("--reason", required=True, help="why (required; the requester sees it)")
    p.set_defaults(func=cmd_deny)

    p = command("reconcile", common, actor)
    p.add_argument("cred", metavar="CRED")
    p.add_argument("--fresh", action="store_true", help="roll the pending value back (only "
                   "when the target provably still has the current one) and rotate anew")
    p.set_defaults(func=cmd_reconcile)

    p = command("apply", common, actor)
    p.add_argument("cred", metavar="CRED")
    p.add_argument("--confirm", action="store_true", help="the target now has the value")
    p.set_defaults(func=cmd_apply)

    p = command("review", common, actor)
    p.add_argument("item", metavar="ID|list")
    p.add_argument("--outcome", choices=["ok", "concern"], help="required for a review")
    p.add_argument("--note", help="what you checked (required with 'concern')")
    p.set_defaults(func=cmd_review)

    p = command("onboard", common, actor)
    p.add_argument("action", choices=["issue", "activate", "revoke", "list"])
    p.add_argument("id", nargs="?", help="activate, revoke: the onboarding id (required)")
    p.add_argument("--identity", help="issue (required): who the secret is for")
    p.add_argument("--reason", help="issue (required)")
    p.add_argument("--ticket", help="issue (required)")
    p.add_argument("--channel", help="issue (required): how it will be delivered")
    p.add_argument("--expires", help="validity (default 24h, at most 72h)")
    p.add_argument("--connector", default="generated", help="admins only")
    p.add_argument("--target", help="admins only")
    p.add_argument("--template", help="an onboarding template of the site policy")
    p.add_argument("--manual", action="store_true",
                   help="revoke: record a revocation done by hand (admin)")
    p.add_argument("--note", help="revoke: how it was revoked")
    p.set_defaults(func=cmd_onboard)

    p = command("kit", common, actor)
    p.add_argument("action", choices=["issue", "part", "use", "status", "burn", "sweep"])
    p.add_argument("cred", nargs="?", metavar="CRED", help="use: the credential (required)")
    p.add_argument("--code-file", metavar="PATH", action="append",
                   help="file holding a kit part, given once per part or once with both "
                   "('-' = stdin; prompted on a terminal). Never on the command line.")
    p.add_argument("--reason", help="use (required)")
    p.add_argument("--ticket", help="use (required)")
    p.add_argument("--duration", help="use (required): 90s, 30m, 1h30m, 2h")
    p.add_argument("--with", dest="with_", metavar="NAME", help="issue: the second operator")
    p.add_argument("--with-totp", metavar="CODE")
    p.add_argument("--with-passphrase-file", metavar="PATH")
    p.set_defaults(func=cmd_kit)

    p = command("alerts", common)
    p.set_defaults(func=cmd_alerts)

    p = command("audit", common)
    p.add_argument("action", choices=["verify", "export", "forward"])
    p.add_argument("--incremental", action="store_true",
                   help="verify: only the entries after this client's last verified head")
    p.add_argument("--format", choices=["jsonl", "csv", "syslog"])
    p.add_argument("--output", metavar="PATH")
    p.add_argument("--to", metavar="HOST:PORT", help="forward (required): the syslog collector")
    p.add_argument("--protocol", choices=["udp", "tcp"], default="udp")
    p.set_defaults(func=cmd_audit)

    p = command("report", common, actor)
    p.add_argument("kind", choices=["custody", "verify"],
                   help="custody: build a report; verify FILE: check it against its attestation")
    p.add_argument("file", nargs="?", metavar="FILE", help="verify: the report file")
    p.add_argument("--since", metavar="DATE", help="custody (required): YYYY-MM-DD")
    p.add_argument("--until", metavar="DATE")
    p.add_argument("--format", choices=["md", "html", "json"], default="md")
    p.add_argument("--output", metavar="PATH")
    p.add_argument("--attest", action="store_true",
                   help="sign off the period as the reviewer (needs --as ...)")
    p.set_defaults(func=cmd_report)

    p = command("demo", common)
    p.set_defaults(func=cmd_demo)

    p = command("completion", common)
    p.add_argument("shell", choices=["bash", "zsh", "fish"])
    p.set_defaults(func=cmd_completion)
    from glasskey.tui import cli_outage  # issue 14: notify, relay, drill, open

    cli_outage.add_parsers(sub, common, actor)
    return parser


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("glasskey")
    except Exception:  # not installed (run from a checkout)
        return "0.1.0"


# -- shell completion ----------------------------------------------------------------------------
def completion_model(parser: Parser) -> dict[str, tuple[list[str], list[str]]]:
    """Command -> (its options, the choices of its first positional argument)."""
    model: dict[str, tuple[list[str], list[str]]] = {}
    for name, p in parser.subcommands.items():
        options: list[str] = []
        choices: list[str] = []
        for act in p._actions:
            if act.help == argparse.SUPPRESS:
                continue
            if act.option_strings:
                options += [o for o in act.option_strings if o.startswith("--")]
            elif act.choices and not choices:
                choices = [str(c) for c in act.choices]
        model[name] = (options, choices)
    return model


def completion_script(parser: Parser, shell: str) -> str:
    """A completion script generated from the parser itself, so it never goes stale."""
    model = completion_model(parser)
    commands = " ".join(model)
    globals_ = "--vault --json --version --help"
    if shell == "fish":
        lines = ["# glasskey completion for fish: glasskey completion fish | source",
                 "complete -c glasskey -f",
                 "complete -c glasskey -n __fish_use_subcommand -l vault -r -F",
                 "complete -c glasskey -n __fish_use_subcommand -l json",
                 "complete -c glasskey -n __fish_use_subcommand -l version"]
        for name, (options, choices) in model.items():
            desc = DOCS[name][0].split(". ")[0].rstrip(".").replace("'", "")
            lines.append(f"complete -c glasskey -n __fish_use_subcommand -a {name} "
                         f"-d '{desc}'")
            cond = f"'__fish_seen_subcommand_from {name}'"
            if choices:
                lines.append(f"complete -c glasskey -n {cond} -a '{' '.join(choices)}'")
            for opt in options:
                lines.append(f"complete -c glasskey -n {cond} -l {opt[2:]}")
        return "\n".join(lines) + "\n"
    cases = "\n".join(f"    {name}) words='{' '.join(choices + options)}' ;;"
                      for name, (options, choices) in model.items())
    body = f"""_glasskey() {{
  local cur prev cmd words i
  COMPREPLY=()
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  case "$prev" in
    --vault|--*-file|--file|--output) return 0 ;;
  esac
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${{COMP_WORDS[i]}}" in
      --vault) ((i++)) ;;
      -*) ;;
      *) cmd="${{COMP_WORDS[i]}}"; break ;;
    esac
  done
  case "$cmd" in
    "") words='{commands} {globals_}' ;;
{cases}
    *) words='' ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}}
complete -o default -F _glasskey glasskey
"""
    if shell == "zsh":
        return ("# glasskey completion for zsh: eval \"$(glasskey completion zsh)\"\n"
                "autoload -U +X bashcompinit && bashcompinit\n" + body)
    return "# glasskey completion for bash: eval \"$(glasskey completion bash)\"\n" + body


def cmd_completion(vault: Vault | None, args: argparse.Namespace) -> int:
    sys.stdout.write(completion_script(build_parser(), args.shell))
    return 0


# -- dispatch ----------------------------------------------------------------------------------
def merge_globals(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """--vault/--json before the command mean what they mean after it."""
    sub_vault = getattr(args, "vault", None)
    if args.g_vault and sub_vault and Path(args.g_vault) != Path(sub_vault):
        raise UsageError("--vault is given twice with different directories")
    args.vault = sub_vault or args.g_vault
    args.json = bool(getattr(args, "json", False) or args.g_json)
    if args.command == "request":
        # 'request -- list': after '--', 'list' is a credential's name, not the list command.
        tail = list(argv)[list(argv).index("--") + 1:] if "--" in argv else []
        if args.cred == "list" and tail[:1] == ["list"]:
            args.cred, args.cred_opt = None, "list"
        if args.cred and args.cred_opt:
            raise UsageError("name the credential once: as CRED or as --cred NAME")


def main(argv: Sequence[str] | None = None) -> int:
    # Before any passphrase, key or secret is in memory: no core file, not dumpable.
    harden_process()
    from glasskey.tui import envguard

    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
            merge_globals(args, argv)
            if args.command is not None:
                check_options(parser, args)
        except CliUsage as exc:
            raise UsageError(str(exc)) from None
        json_mode = json_mode or bool(args.json)
        # Before anything imports Textual (tui/envguard.py says why). Only the TUI
        # loads Textual, so only the TUI needs (and warns about) the scrub.
        if args.command in (None, "demo", "open"):
            envguard.scrub(quiet=False)
            envguard.disable_screenshots()
        if args.command is None:
            from glasskey.tui import app as tui_app

            fsutil.set_lock_identity(command="tui")
            tui_app.run(open_store(args.vault), open_request=args.open)
            return 0
        if args.command in ("demo", "completion"):
            return int(args.func(None, args))
        action = getattr(args, "action", None)
        fsutil.set_lock_identity(  # names only: never an argument that could be a secret
            command=" ".join(x for x in (args.command, action) if isinstance(x, str)),
            operator=getattr(args, "as_", None))
        vault = Vault(open_store(args.vault, lock_timeout=lock_wait(getattr(args, "wait", None))))
        return int(args.func(vault, args))
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
