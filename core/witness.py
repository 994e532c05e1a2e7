"""Each client's checkpoint: the last audit head this client *verified*, and the roster then.

Anyone who can write the vault directory can restore an older ``vault.json``
and ``audit.jsonl`` together, and the log would verify on its own. A head kept
*outside* the vault directory, by every client that reads the vault (readers
included, not only writers), turns such a rollback into a detectable event
(as Certificate Transparency witnesses and TUF clients do). The same file
caches the signed roster folded up to that head (core/chain.py), so a client
verifies only the entries it has not seen yet.

Beside the checkpoints, ``pins.json`` maps each vault location this client
has used to the vault identity it found there (a digest of the founding
roster): a vault re-founded in the same place is refused.

The residual risk (a rollback no client had seen past) is in SECURITY.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from glasskey.core import canonical
from glasskey.core.audit import Head
from glasskey.core.errors import IntegrityError, StorageError
from glasskey.core.fsutil import atomic_write, ensure_private_dir
from glasskey.core.roster import Roster


def state_dir(given: Path | None = None) -> Path:
    """``given`` (the fronts pass it, tui/environment.py); else GLASSKEY_STATE_DIR for
    callers that pass nothing yet (tests, tools); else the platform's state directory."""
    if given is not None:
        return Path(given)
    env = os.environ.get("GLASSKEY_STATE_DIR")
    return Path(env) if env else Path(platformdirs.user_state_dir("glasskey"))


_resolve = state_dir


def _path(vault_id: str, base: Path | None = None) -> Path:
    return _resolve(base) / "checkpoints" / f"{vault_id}.json"


def _read(vault_id: str, base: Path | None = None) -> dict[str, Any] | None:
    path = _path(vault_id, base)
    try:
        doc = canonical.loads(path.read_bytes())
        if not isinstance(doc, dict):
            raise IntegrityError("not an object")
        return doc
    except FileNotFoundError:
        return None
    except (IntegrityError, OSError):
        # A damaged checkpoint protects nothing; say so rather than guess.
        raise IntegrityError(
            f"this client's audit checkpoint {path} is damaged; move it aside to continue"
        ) from None


def load(vault_id: str, state_dir: Path | None = None) -> Head | None:
    """The head this client last verified (None: it never used this vault)."""
    cp = load_checkpoint(vault_id, state_dir)
    return cp[0] if cp is not None else None


def load_checkpoint(vault_id: str, state_dir: Path | None = None
                    ) -> tuple[Head, Roster | None] | None:
    doc = _read(vault_id, state_dir)
    if doc is None:
        return None
    try:
        head = Head(int(doc["seq"]), str(doc["hash"]), int(doc["offset"]),
                    dict(doc.get("actors") or {}))
        roster_doc = doc.get("roster")
        roster = Roster.from_doc(roster_doc) if isinstance(roster_doc, dict) else None
    except (KeyError, TypeError, ValueError, IntegrityError):
        raise IntegrityError(
            f"this client's audit checkpoint {_path(vault_id, state_dir)} is damaged; move it "
            "aside to continue") from None
    if roster is not None and roster.vault_id != vault_id:
        roster = None
    return head, roster


def save(vault_id: str, head: Head, roster: Roster | None = None,
         state_dir: Path | None = None) -> None:
    """Remember ``head`` (and the roster verified up to it); never moves backwards."""
    try:
        old = load_checkpoint(vault_id, state_dir)
    except IntegrityError:
        old = None
    if old is not None and (old[0].seq > head.seq or (
            old[0].seq == head.seq and (roster is None or old[1] is not None))):
        return
    path = _path(vault_id, state_dir)
    doc: dict[str, object] = {"seq": head.seq, "hash": head.hash, "offset": head.offset,
                              "actors": dict(head.actors)}
    if roster is not None:
        doc["roster"] = roster.to_doc()
    try:
        # A new state dir is private too (an existing one is left as it is).
        _resolve(state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        ensure_private_dir(path.parent)
        # No directory fsync: a checkpoint lost in a crash only weakens detection.
        atomic_write(path, canonical.dumps(doc), sync_dir=False)
    except (OSError, StorageError):
        pass  # a witness that cannot be written weakens detection but blocks no one


def _pins_path(base: Path | None = None) -> Path:
    return _resolve(base) / "pins.json"


def check_pin(location: Path | str, vault_id: str, state_dir: Path | None = None) -> None:
    """Refuse a vault whose identity at ``location`` is not the one first seen there.

    ``location`` is a vault directory, or a database backend's own key for where
    the vault lives (a ``postgresql://host:port/db`` string, taken as it is)."""
    key = location if isinstance(location, str) else str(Path(os.path.abspath(location)))
    path = _pins_path(state_dir)
    try:
        pins = canonical.loads(path.read_bytes())
        if not isinstance(pins, dict):
            raise IntegrityError("malformed")
    except FileNotFoundError:
        pins = {}
    except (IntegrityError, OSError):
        raise IntegrityError(
            f"this client's vault pins {path} are damaged; move the file aside to continue"
        ) from None
    pinned = pins.get(key)
    if pinned == vault_id:
        return
    if pinned is not None:
        raise IntegrityError(
            f"the vault at {key} is not the one this client first used there (identity "
            f"{pinned}, now {vault_id}): it was replaced or re-founded")
    pins[key] = vault_id
    try:
        _resolve(state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, canonical.dumps(pins), sync_dir=False)
    except (OSError, StorageError):
        pass
