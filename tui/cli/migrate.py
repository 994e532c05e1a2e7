"""``glasskey migrate --to postgresql://...``: move a directory vault into PostgreSQL.

The move copies signed records and sealed material byte for byte, then
verifies every link and signature in the database
(core/storage/postgres_import.py); no operator key is needed, because nothing
in the store is believed without its signatures. Afterwards the directory is
retired: ``vault.json`` is renamed and a ``MOVED`` note says where the vault
went, so a client that still names the directory is told instead of carrying
on with an older copy (a fork nobody would see). Irreversible, so it asks
first (or takes ``--yes``).
"""

from __future__ import annotations

import os

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
from glasskey.tui.cli.output import note, show
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.prompts import ask, interactive

RETIRED_SUFFIX = ".moved"


def migrate(ctx: Ctx, *, to: str, yes: bool) -> int:
    source = ctx.vault.store
    if not isinstance(source, FileStore):
        raise UsageError("migrate moves a directory vault: name it with --vault DIR")
    if not to.startswith(URL_SCHEMES):
        raise UsageError("--to wants a PostgreSQL URL (postgresql://user@host:port/db)")
    target = open_store(to)
    where = str(getattr(target, "location", "the database"))
    if not yes:
        if not interactive():
            raise UsageError("migrate retires the directory vault once it is copied; "
                             "add --yes to go ahead")
        answer = ask(f"Move the vault at {source.root} to {where} and retire the "
                     "directory? Type 'move' to go ahead: ")
        if answer != "move":
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
                     help="move a directory vault (--vault DIR) into PostgreSQL")
    p.add_argument("--to", required=True, metavar="URL",
                   help="the empty PostgreSQL database, postgresql://user@host:port/db "
                   "(passwords come from pgpass or a service file, never the URL)")
    p.add_argument("--yes", action="store_true",
                   help="do not ask before retiring the directory")


PARSERS = {"migrate": add_migrate_parser}
