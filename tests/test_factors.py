"""An operator's own factors (issue 11): `operator passwd` and `operator totp-reset`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyotp
import pytest
from checkout_world import World, make_world, passphrase
from glasskey.core import totp
from glasskey.core.errors import AuthError, PolicyError, UsageError
from test_cli import Cli, cli, fresh_step  # noqa: F401  (the CLI fixture)


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path, ("alice", "bob", "carol"))
    world.add("db-root", "db-root-value-1")
    return world


def events(w: World, name: str) -> list[dict[str, Any]]:
    lines = (w.root / "audit.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == name]


def test_passwd_rewraps_the_same_keys(w: World) -> None:
    new = "alice's brand new passphrase"
    w.clock.advance(30)
    w.vault.change_passphrase("alice", passphrase("alice"), w.code("alice"), new)
    w.clock.advance(30)
    with pytest.raises(AuthError):
        w.vault.unlock("alice", passphrase("alice"), w.code("alice"))
    w.clock.advance(30)
    session = w.vault.unlock("alice", new, w.code("alice"))
    req = w.vault.request(session, "db-root", "primary down", "INC-1", 600)
    w.vault.approve(w.s("bob"), req.id)
    assert w.vault.reveal(session, req.id).reveal() == "db-root-value-1"  # same keys
    (e,) = events(w, "operator.passphrase-changed")
    assert e["actor"] == "alice" and e["sig"] and new not in json.dumps(e)


def test_passwd_refuses_a_weak_or_unchanged_passphrase_and_counts_wrong_ones(w: World) -> None:
    w.clock.advance(30)
    with pytest.raises(UsageError):
        w.vault.change_passphrase("alice", passphrase("alice"), w.code("alice"), "short")
    with pytest.raises(UsageError, match="same as the old"):
        w.vault.change_passphrase("alice", passphrase("alice"), w.code("alice"),
                                  passphrase("alice"))
    with pytest.raises(AuthError):
        w.vault.change_passphrase("alice", "not alice's passphrase", w.code("alice"),
                                  "a perfectly long new passphrase")
    assert any(e["subject"] == "alice" for e in events(w, "auth.failed"))


def test_totp_reset_needs_the_passphrase_and_a_second_operator(w: World) -> None:
    bob = w.s("bob")
    with pytest.raises(PolicyError, match="another operator"):
        w.vault.reset_totp(w.s("alice"), "alice", passphrase("alice"))
    with pytest.raises(AuthError):
        w.vault.reset_totp(bob, "alice", "not alice's passphrase at all")
    enrolment = w.vault.reset_totp(bob, "alice", passphrase("alice"))
    assert "alice" in enrolment.uri
    w.clock.advance(30)
    with pytest.raises(AuthError):  # the old authenticator no longer works
        w.vault.unlock("alice", passphrase("alice"), w.code("alice"))
    w.clock.advance(30)
    code = totp.code_at(enrolment.totp_secret, w.clock.now())
    session = w.vault.unlock("alice", passphrase("alice"), code)
    assert session.name == "alice"
    (reset,) = events(w, "operator.totp-reset")
    assert reset["actor"] == "alice" and reset["details"]["countersigned_by"] == ["bob"]
    assert events(w, "operator.totp-reset-witnessed")[0]["actor"] == "bob"
    assert enrolment.totp_secret not in (w.root / "audit.jsonl").read_text()


def test_cli_passwd_and_totp_reset(cli: Cli) -> None:  # noqa: F811
    fresh_step()
    (cli.root / "new.pass").write_text("alice's new cli passphrase\n")
    r = cli("operator", "passwd", "--new-passphrase-file", str(cli.root / "new.pass"),
            *cli.as_("alice", 0))
    assert r.code == 0, r.err
    (cli.root / "alice.pass").write_text("alice's new cli passphrase\n")
    r = cli("operator", "totp-reset", "alice", "--passphrase-file", str(cli.root / "alice.pass"),
            "--with", "bob", "--with-totp", pyotp.TOTP(_seed("bob")).now(),
            "--with-passphrase-file", str(cli.root / "bob.pass"), "--json")
    assert r.code == 0, r.err
    seed = json.loads(r.out)["totp_secret"]
    assert seed not in (cli.root / "vault" / "audit.jsonl").read_text()
    r = cli("operator", "passwd", "--new-passphrase-file", str(cli.root / "new.pass"),
            "--as", "alice", "--totp", pyotp.TOTP(seed).now(),
            "--passphrase-file", str(cli.root / "alice.pass"))
    assert r.code == 2 and "same as the old" in r.err  # the new TOTP key works


def _seed(name: str) -> str:
    from test_cli import SEEDS

    return SEEDS[name]


def test_cli_init_from_one_file_per_founder(tmp_path: Path) -> None:
    """Each founder writes their own file; the vault is founded from them, signed by all."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, GLASSKEY_VAULT=str(tmp_path / "vault"),
               GLASSKEY_STATE_DIR=str(tmp_path / "state"),
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    files = []
    for name, roles in (("alice", ["requester"]), ("bob", ["approver", "admin"])):
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps({"name": name, "roles": roles,
                                 "passphrase": f"{name}'s own long passphrase"}))
        files += ["--founder-file", str(f)]
    run = subprocess.run([sys.executable, "-m", "glasskey.tui.cli", "init", *files, "--json",
                          "--kdf-seconds", "0.01"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert [o["name"] for o in json.loads(run.stdout)["operators"]] == ["alice", "bob"]
    founded = json.loads((tmp_path / "vault" / "audit.jsonl").read_text().splitlines()[0])
    assert founded["event"] == "vault.founded"
    assert set(founded["details"]["sigs"]) == {"alice", "bob"}
    both = subprocess.run([sys.executable, "-m", "glasskey.tui.cli", "init", *files,
                           "--operators-file", str(files[1])], env=env, capture_output=True,
                          text=True, timeout=120)
    assert both.returncode == 2
