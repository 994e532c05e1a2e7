"""Who is acting: the command's context and the operators' authentication.

Handlers get a :class:`Ctx` (the open vault, ``--json``, the acting operator and a
second operator's factors as given on the command line), never the argparse
namespace. Names are checked before anyone is asked for a passphrase or TOTP code,
so a typo does not burn a code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from glasskey.core.api import NotFoundError, Session, UsageError, Vault
from glasskey.tui.cli.output import note
from glasskey.tui.cli.prompts import ask, interactive, read_name, read_passphrase, read_totp


@dataclass(frozen=True)
class Actor:
    """An operator's factors as given on the command line; prompted for when missing."""

    name: str | None = None
    totp: str | None = None
    passphrase_file: str | None = None


@dataclass(frozen=True)
class Ctx:
    """What every vault command gets: ``--as ...`` is ``actor``, ``--with ...`` is
    ``second`` (the countersigning operator of a two-person action)."""

    vault: Vault
    json: bool = False
    actor: Actor = field(default_factory=Actor)
    second: Actor = field(default_factory=Actor)


def known_operator(vault: Vault, name: str) -> str:
    """Refuse an unknown name before anyone types a passphrase or spends a TOTP code."""
    if name not in {o.name for o in vault.operators()}:
        raise NotFoundError(f"there is no operator named {name!r}")
    return name


def authenticate(ctx: Ctx, *, sweep: bool = True) -> Session:
    """Unlock as the acting operator; then, unless ``sweep`` is off, run the due sweep
    (expired leases, pending rotations) and say what failed on stderr."""
    vault = ctx.vault
    name = known_operator(vault, read_name(ctx.actor.name))
    passphrase = read_passphrase(ctx.actor.passphrase_file, f"Passphrase for {name}: ")
    code = read_totp(ctx.actor.totp, name)
    session = vault.unlock(name, passphrase, code)
    if sweep:
        report = vault.sweep(session)
        for err in report.errors:
            note(f"warning: {err}")
        for res in report.rotated:
            if res.outcome == "failed":
                note(f"ROTATION FAILED: {res.credential}: {res.message}")
    return session


def second_session(ctx: Ctx) -> Session:
    """Unlock the countersigning operator (``--with``, prompted for on a terminal)."""
    name = ctx.second.name
    if not name:
        if not interactive():
            raise UsageError("this needs a second operator: --with NAME --with-totp CODE "
                             "--with-passphrase-file PATH")
        name = ask("Second operator: ")
    known_operator(ctx.vault, name)
    passphrase = read_passphrase(ctx.second.passphrase_file, f"Passphrase for {name}: ")
    code = read_totp(ctx.second.totp, name)
    return ctx.vault.unlock(name, passphrase, code)


def check_second(ctx: Ctx) -> None:
    """A second operator named on the command line must exist, before anyone unlocks."""
    if ctx.second.name:
        known_operator(ctx.vault, ctx.second.name)
