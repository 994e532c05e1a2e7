"""``glasskey migrate --to URL|DIR``: move a vault between a directory and PostgreSQL.

Either way the move copies signed records and sealed material byte for byte,
then verifies every link and signature at the destination
(core/storage/postgres_import.py, core/storage/postgres_export.py); no
operator key is needed, because nothing in the store is believed without its
signatures. Afterwards the source is retired, so a client that still names it
is told where the vault went instead of carrying on with an older copy (a fork
nobody would see): a directory's ``vault.json`` is renamed and a ``MOVED``
note left beside it; a database's metadata gains ``moved_to``. Irreversible,
so it asks first (or takes ``--yes``).
"""

from __future__ import annotations

import os
from pathlib import Path

from glasskey.core.api import (
    MOVED_FILE,
    STATE_FILE,
    URL_SCHEMES,
    FileStore,
    UsageError,
    atomic_write,
    fsync_dir,
    open_store,
)
from glasskey.tui.cli.actor import Ctx
from glasskey.tui.cli.output import note, progress_printer, show
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.prompts import ask, interactive

RETIRED_SUFFIX = ".moved"


def migrate(ctx: Ctx, *, to: str, yes: bool) -> int:
    source = ctx.vault.store
    if not isinstance(source, FileStore):
        if to.startswith(URL_SCHEMES):
            raise UsageError("migrate moves a database vault into a directory (--to DIR), "
                             "or a directory vault into a database")
        return migrate_to_directory(ctx, to=to, yes=yes)
    if not to.startswith(URL_SCHEMES):
        raise UsageError("the vault is already a directory: --to wants a PostgreSQL URL "
                         "(postgresql://user@host:port/db)")
    target = open_store(to)
    where = str(getattr(target, "location", "the database"))
    if not _confirmed(yes, f"Move the vault at {source.root} to {where} and retire the "
                      "directory?", "the directory vault"):
        note("nothing moved")
        return 1
    from glasskey.core.api import move_to_postgres

    note(f"copying and verifying {source.root} into {where} ...")
    moved = move_to_postgres(source, target)  # type: ignore[arg-type]
    retire(source, where)
    site = source.root / "glasskey.toml"
    if site.is_file():
        note(f"{site} stays where it is: each client keeps the site settings of a database "
             f"vault in {target.root / 'glasskey.toml'} (docs/team-mode.md)")
    show(ctx.json, {"moved_to": where, "entries": moved.entries, "documents": moved.documents,
                    "head_seq": moved.head_seq, "head_hash": moved.head_hash},
         f"moved {moved.entries} audit entries and {moved.documents} records to {where}; "
         f"verified to entry {moved.head_seq}",
         f"the directory is retired; use --vault {where} (or GLASSKEY_VAULT) from now on")
    return 0


def migrate_to_directory(ctx: Ctx, *, to: str, yes: bool) -> int:
    """The way back: the database vault into a new (or empty) directory, verified, then
    the database retired, all under the database's writer lock (nobody commits
    meanwhile; they are told where the vault went once it is done)."""
    from glasskey.core.api import check_new_directory, move_to_directory

    source = ctx.vault.store
    where = str(getattr(source, "location", "the database"))
    target = check_new_directory(Path(to).expanduser())  # refused before anyone is asked
    if not _confirmed(yes, f"Move the vault at {where} into {target} and retire the "
                      "database vault?", "the database vault"):
        note("nothing moved")
        return 1
    note(f"copying {where} into {target} (writers on every machine wait meanwhile) ...")
    moved = move_to_directory(source, target,  # type: ignore[arg-type]
                              progress=progress_printer("copying audit entries"))
    note(f"retired {where}: a client that names it is told the vault is in {target}")
    site = source.root / "glasskey.toml"
    if site.is_file():
        note(f"{site} (this client's site settings for the database vault) stays where it "
             f"is: copy it to {target / 'glasskey.toml'} if the directory should use it")
    show(ctx.json, {"moved_to": str(target), "entries": moved.entries,
                    "documents": moved.documents, "head_seq": moved.head_seq,
                    "head_hash": moved.head_hash},
         f"moved {moved.entries} audit entries and {moved.documents} records to {target}; "
         f"verified to entry {moved.head_seq}",
         f"the database vault is retired; use --vault {target} (or GLASSKEY_VAULT) from "
         "now on")
    return 0


def _confirmed(yes: bool, question: str, retired: str) -> bool:
    """``--yes``, or the person types 'move'; with neither a terminal nor --yes: exit 2."""
    if yes:
        return True
    if not interactive():
        raise UsageError(f"migrate retires {retired} once it is copied; add --yes to go "
                         "ahead")
    return ask(f"{question} Type 'move' to go ahead: ") == "move"


def retire(source: FileStore, where: str) -> None:
    """The note first, then the rename: a crash between them leaves a directory that
    still opens (and migrate says the database already holds the vault)."""
    atomic_write(source.root / MOVED_FILE, f"{where}\n".encode())
    state = source.root / STATE_FILE
    os.replace(state, state.with_name(STATE_FILE + RETIRED_SUFFIX))
    fsync_dir(source.root)
    note(f"retired {source.root} (its {STATE_FILE} is now {STATE_FILE}{RETIRED_SUFFIX})")


def add_migrate_parser(cmds: Commands) -> None:
    p = cmds.command("migrate", handler=migrate,
                     help="move a directory vault (--vault DIR) into PostgreSQL, or a "
                     "PostgreSQL vault (--vault URL) back into a directory")
    p.add_argument("--to", required=True, metavar="URL|DIR",
                   help="the empty PostgreSQL database, postgresql://user@host:port/db "
                   "(passwords come from pgpass or a service file, never the URL); or, "
                   "from a database vault, a new or empty directory")
    p.add_argument("--yes", action="store_true",
                   help="do not ask before retiring the source vault")


PARSERS = {"migrate": add_migrate_parser}
