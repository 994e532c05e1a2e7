"""``glasskey cred add|import|list``: the credentials in custody."""

from __future__ import annotations

import json
import sys

from glasskey.core.api import (
    CredentialSpec,
    Policy,
    SecretValue,
    UsageError,
    cap_all,
    check_name,
    parse_duration,
    registry,
)
from glasskey.tui.cli.actor import Ctx, authenticate
from glasskey.tui.cli.output import progress_printer, show
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.prompts import ask_hidden, interactive, read_passphrase, read_secret_file
from glasskey.tui.cli.render import cred_doc, cred_line


def cred_list(ctx: Ctx) -> int:
    active = ctx.vault.active_map()
    rows = [cred_doc(ctx.vault, c, active) for c in ctx.vault.credentials()]
    show(ctx.json, rows, *(cred_line(r) for r in rows))
    return 0


def policy_from(k: int | None, max_duration: str | None, length: int | None,
                classes: str | None, exclude: str | None) -> Policy:
    """The policy options of ``cred add``; what is not given keeps Policy's default."""
    base = Policy()
    return Policy(
        k=k or base.k,
        max_duration=parse_duration(max_duration) if max_duration else base.max_duration,
        length=length or base.length,
        classes=tuple(c.strip() for c in classes.split(",")) if classes else base.classes,
        exclude=exclude if exclude is not None else base.exclude,
    )


def cred_add(ctx: Ctx, *, name: str, kind: str, connector: str, secret_file: str | None,
             target: str | None, dn: str | None, admin_service: str | None,
             option: list[str] | None, k: int | None, max_duration: str | None,
             length: int | None, classes: str | None, exclude: str | None) -> int:
    check_name(name, "credential")
    cap_all(target=target)
    options = {}
    if dn:
        options["dn"] = dn
    if admin_service:
        options["admin_service"] = admin_service
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--option wants KEY=VALUE, got {item!r}")
        options[key] = value
    spec = CredentialSpec(
        name=name, kind=kind, connector=connector,
        secret=read_secret_file(secret_file) if secret_file else None,
        target=target, options=options,
        policy=policy_from(k, max_duration, length, classes, exclude))
    registry.check(spec.connector, spec.target, spec.options)  # before a TOTP is spent
    session = authenticate(ctx)
    cred = ctx.vault.add_credential(session, spec)
    show(ctx.json, {"name": cred.name, "id": cred.id, "version": cred.version},
         f"credential {cred.name} added (version {cred.version})")
    return 0


def cred_import(ctx: Ctx, *, file: str | None, from_kdbx: str | None,
                kdbx_password_file: str | None, kdbx_keyfile: str | None) -> int:
    # argparse lets exactly one of --file and --from-kdbx through
    specs = read_kdbx(from_kdbx, kdbx_password_file, kdbx_keyfile) if from_kdbx is not None \
        else read_import(file or "")
    session = authenticate(ctx)
    creds = ctx.vault.import_credentials(session, specs, progress_printer("importing"))
    show(ctx.json, {"imported": len(creds)}, f"imported {len(creds)} credential(s)")
    return 0


def read_kdbx(path: str, password_file: str | None, keyfile: str | None
              ) -> list[CredentialSpec]:
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
    if password_file:
        password: str | None = read_passphrase(password_file, "")
    elif interactive():
        password = ask_hidden("KeePass master password: ")
    elif keyfile:
        password = None
    else:
        raise UsageError("give the database's master password with --kdbx-password-file PATH "
                         "(or - for stdin)")
    try:
        kp = PyKeePass(path, password=password, keyfile=keyfile)
    except CredentialsError:
        raise UsageError("the KeePass master password or key file is wrong") from None
    except FileNotFoundError:
        raise UsageError(f"cannot read {path}: no such file") from None
    except Exception as exc:  # pykeepass raises assorted parse errors on a bad file
        raise UsageError(f"{path} is not a KeePass database I can read "
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
        raise UsageError(f"{path} holds no entry with a password")
    return specs


def read_import(path: str) -> list[CredentialSpec]:
    """JSON lines, one credential each: name, kind, connector, secret, target, options."""
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


def add_cred_parsers(cmds: Commands) -> None:
    actions = cmds.actions(cmds.command("cred"))
    p = cmds.action(actions, "add", cmds.actor, handler=cred_add, help="add a credential")
    p.add_argument("name", help="the credential's name")
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

    p = cmds.action(actions, "import", cmds.actor, handler=cred_import,
                    help="import credentials: from JSON lines or a KeePass database")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="JSON lines to import ('-' = stdin)")
    source.add_argument("--from-kdbx", metavar="FILE", help="a KeePass/KeePassXC database "
                        "(title -> name, password -> secret; the manual connector)")
    p.add_argument("--kdbx-password-file", metavar="PATH", help="the database's master "
                   "password ('-' = stdin; prompted on a terminal)")
    p.add_argument("--kdbx-keyfile", metavar="PATH", help="the database's key file")

    cmds.action(actions, "list", handler=cred_list, help="list the credentials and their state")


PARSERS = {"cred": add_cred_parsers}
