"""Helpers for the PostgreSQL backend's tests that are not fixtures (the fixtures are in
tests/pg_vault.py, loaded with ``pytest_plugins``; importing this module instead
keeps that one from being imported before pytest registers it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pg_vault import PgVaults

#: The value of the db-root credential every pg_world holds.
SECRET = "s3cret-db-root-value"
#: TOTP seeds of the operators the CLI tests found vaults with (ops.json).
CLI_SEEDS = {"alice": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "bob": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"}


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


class Machine:
    """One workstation: its own HOME and state dir, one operator, its own database role."""

    def __init__(self, base: Path, name: str, url: str) -> None:
        self.home = base / f"machine-{name}"
        self.home.mkdir()
        self.name = name
        self.env = dict(os.environ, HOME=str(self.home), GLASSKEY_VAULT=url,
                        GLASSKEY_STATE_DIR=str(self.home / "state"),
                        )
        self.env.pop("GLASSKEY_INSECURE_FAST_KDF", None)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "glasskey.tui.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=120)

    def cli(self, *args: str) -> list[str]:
        """The command line that runs the CLI on this machine (for a Popen)."""
        return [sys.executable, "-m", "glasskey.tui.cli", *args]

    def auth(self, offset: int, name: str | None = None) -> list[str]:
        """``--as``, ``--totp`` (the code ``offset`` seconds from now) and a passphrase
        file for ``name`` (this machine's operator unless given)."""
        import pyotp

        name = name or self.name
        passfile = self.home / f"{name}.pass"
        passfile.write_text(f"{name} cli passphrase\n")
        code = pyotp.TOTP(CLI_SEEDS[name]).at(time.time() + offset)
        return ["--as", name, "--totp", code, "--passphrase-file", str(passfile)]


def fresh_step() -> None:
    """Wait until the current TOTP step has at least 12 s left (two codes in a row)."""
    while time.time() % 30 > 18:
        time.sleep(0.5)


def found_cli_vault(machine: Machine, tmp_path: Path) -> None:
    """``glasskey init`` as ``machine`` with alice (requester) and bob (approver, admin),
    then bob adds the credential db-root (its value: SECRET)."""
    ops = [{"name": n, "roles": r, "passphrase": f"{n} cli passphrase",
            "totp_secret": CLI_SEEDS[n]}
           for n, r in (("alice", ["requester"]), ("bob", ["approver", "admin"]))]
    (tmp_path / "ops.json").write_text(json.dumps(ops))
    r = machine("init", "--operators-file", str(tmp_path / "ops.json"), "--kdf-seconds",
                "0.01")
    assert r.returncode == 0, r.stderr
    (tmp_path / "secret").write_text(SECRET + "\n")
    fresh_step()
    r = machine("cred", "add", "db-root", "--secret-file", str(tmp_path / "secret"),
                *machine.auth(-30, "bob"))
    assert r.returncode == 0, r.stderr
