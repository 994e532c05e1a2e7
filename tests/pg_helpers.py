"""Helpers for the PostgreSQL backend's tests that are not fixtures (the fixtures are in
tests/pg_vault.py, loaded with ``pytest_plugins``; importing this module instead
keeps that one from being imported before pytest registers it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pg_vault import PgVaults

#: The value of the db-root credential every pg_world holds.
SECRET = "s3cret-db-root-value"


def edit_doc(vaults: PgVaults, db: str, tbl: str, key: str, field: str, value: Any) -> None:
    """Change one field of a stored document as the superuser (no glasskey code)."""
    with vaults.superuser(db) as su:
        row = su.execute("SELECT body FROM glasskey.doc WHERE tbl = %s AND key = %s",
                         (tbl, key)).fetchone()
        assert row is not None, (tbl, key)
        doc = json.loads(bytes(row[0]))
        doc[field] = value
        su.execute("UPDATE glasskey.doc SET body = %s WHERE tbl = %s AND key = %s",
                   (json.dumps(doc).encode(), tbl, key))
