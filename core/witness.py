"""Each client's witness checkpoint: the last audit head this machine saw.

Anyone who can write the vault directory can restore an older ``vault.json``
and ``audit.jsonl`` together, and the log would verify on its own. A head kept
*outside* the vault directory, by every operator's client, turns such a
rollback into a detectable event (as Certificate Transparency witnesses do).
The residual risk (a rollback nobody's client had seen past) is in SECURITY.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from core import canonical
from core.audit import Head
from core.errors import IntegrityError, StorageError
from core.fsutil import atomic_write, ensure_private_dir


def state_dir() -> Path:
    env = os.environ.get("GLASSKEY_STATE_DIR")
    return Path(env) if env else Path(platformdirs.user_state_dir("glasskey"))


def _path(vault_id: str) -> Path:
    return state_dir() / "checkpoints" / f"{vault_id}.json"


def load(vault_id: str) -> Head | None:
    path = _path(vault_id)
    try:
        doc = canonical.loads(path.read_bytes())
        return Head(int(doc["seq"]), str(doc["hash"]), int(doc["offset"]))
    except FileNotFoundError:
        return None
    except (IntegrityError, KeyError, TypeError, ValueError):
        # A damaged checkpoint protects nothing; say so rather than guess.
        raise IntegrityError(
            f"this client's audit checkpoint {path} is damaged; move it aside to continue"
        ) from None


def save(vault_id: str, head: Head) -> None:
    try:
        old = load(vault_id)
    except IntegrityError:
        old = None
    if old is not None and old.seq >= head.seq:
        return
    path = _path(vault_id)
    try:
        # A new state dir is private too (an existing one is left as it is).
        state_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        ensure_private_dir(path.parent)
        # No directory fsync: a checkpoint lost in a crash only weakens detection.
        atomic_write(path, canonical.dumps(
            {"seq": head.seq, "hash": head.hash, "offset": head.offset}), sync_dir=False)
    except (OSError, StorageError):
        pass  # a witness that cannot be written weakens detection but blocks no one
