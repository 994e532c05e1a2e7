"""Rotation after use against real targets: PostgreSQL, slapd, site commands, manual.

Catalogue rows R1 (failures: unreachable, lost reply, rejected by policy) and
D1 (SIGKILL at random points of a rotation against a real PostgreSQL: the
password the server accepts is always one the vault can decrypt).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import random
import signal
import stat
import time
from pathlib import Path

import ldap3
import psycopg
import pytest
from checkout_world import World, decrypt_version, make_world
from glasskey.core.clock import FakeClock
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import PolicyError
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.vault import Vault
from helpers import file_store
from servers import LdapServer, PostgresServer, new_password

SOAK = os.environ.get("GLASSKEY_SOAK") == "1"
_n = itertools.count()


def pg_login(server: PostgresServer, role: str, password: str) -> bool:
    try:
        with psycopg.connect(server.role_conninfo(role) + f" password={password}"):
            return True
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc), "unexpected failure kind"
        return False


def ldap_bind(server: LdapServer, dn: str, password: str) -> bool:
    conn = ldap3.Connection(ldap3.Server(server.url), user=dn, password=password)
    ok = bool(conn.bind())
    conn.unbind()
    return ok


def add(w: World, name: str, connector: str, value: str, target: str,
        options: dict[str, str] | None = None) -> None:
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        name, connector=connector, secret=SecretValue(value), target=target,
        options=options or {}))


def use(w: World, cred: str) -> tuple[str, str]:
    req = w.checkout(cred)
    return req, w.vault.reveal(w.s("alice"), req).reveal()


# -- real targets ---------------------------------------------------------------------------
def test_postgres_checkin_changes_the_real_password(tmp_path: Path,
                                                    postgres_server: PostgresServer) -> None:
    w = make_world(tmp_path)
    role, initial = f"gk_pg_{next(_n)}", new_password()
    postgres_server.create_role(role, initial)
    add(w, "pg-bg", "postgres", initial, postgres_server.role_conninfo(role))
    req, old = use(w, "pg-bg")
    assert old == initial and pg_login(postgres_server, role, old)
    result = w.vault.checkin(w.s("alice"), req)
    assert result.outcome == "committed", result.message
    new = decrypt_version(w, "pg-bg")
    assert new and new != old
    assert pg_login(postgres_server, role, new)
    assert not pg_login(postgres_server, role, old)
    assert decrypt_version(w, "pg-bg", "pending") is None  # the vault holds only the new value
    assert initial not in postgres_server.log_text()
    assert new not in postgres_server.log_text()


def test_ldap_checkin_changes_the_real_password(tmp_path: Path,
                                                ldap_server: LdapServer) -> None:
    w = make_world(tmp_path)
    uid, initial = f"gk_ldap_{next(_n)}", new_password()
    dn = ldap_server.add_user(uid, initial)
    add(w, "ldap-bg", "ldap", initial, ldap_server.url, {"dn": dn})
    req, old = use(w, "ldap-bg")
    result = w.vault.checkin(w.s("alice"), req)
    assert result.outcome == "committed", result.message
    new = decrypt_version(w, "ldap-bg")
    assert new and new != old
    assert ldap_bind(ldap_server, dn, new)
    assert not ldap_bind(ldap_server, dn, old)


# -- manual ---------------------------------------------------------------------------------
def test_manual_target_waits_for_another_operator_to_apply(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    add(w, "hsm-console", "manual", "console-value-0", "rack 4 HSM")
    req, old = use(w, "hsm-console")
    result = w.vault.checkin(w.s("alice"), req)
    assert result.outcome == "apply-pending"
    assert w.vault.credential("hsm-console").status == "apply-pending"
    # the holder cannot apply their own rotation
    with pytest.raises(PolicyError, match="holder"):
        w.vault.reveal_apply(w.s("alice"), "hsm-console")
    # until applied, checkouts reveal what the target still has
    req2, still = use(w, "hsm-console")
    assert still == old
    w.vault.checkin(w.s("alice"), req2)
    with pytest.raises(PolicyError, match="not fetched"):
        w.vault.confirm_applied(w.s("carol"), "hsm-console")
    new = w.vault.reveal_apply(w.s("carol"), "hsm-console").reveal()
    assert new != old
    assert w.vault.confirm_applied(w.s("carol"), "hsm-console").outcome == "committed"
    _, after = use(w, "hsm-console")
    assert after == new
    commits = [e for e in file_store(w.vault).audit.entries() if e["event"] == "rotate.commit"]
    assert commits[-1]["details"]["applied_by"] == "carol"


# -- R1 with a site command whose behaviour the test controls -------------------------------
FLAKY = """#!/usr/bin/env python3
import json, sys, pathlib
base = pathlib.Path(__file__).parent
req = json.load(sys.stdin)
mode = (base / "mode").read_text().strip()
target = base / "password"
if mode == "down":
    sys.exit(3)
if req["action"] == "verify":
    sys.exit(0 if target.read_text() == req["value"] else 1)
if mode == "reject":
    print("password does not meet the policy", file=sys.stderr)
    sys.exit(1)
target.write_text(req["value"])
sys.exit(3 if mode == "lost-reply" else 0)
"""


@pytest.fixture
def flaky(tmp_path: Path) -> tuple[World, Path]:
    w = make_world(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    script = site / "set-password"
    script.write_text(FLAKY)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (site / "password").write_text("flaky-initial")
    (site / "mode").write_text("ok")
    add(w, "app-admin", "command", "flaky-initial", str(script))
    return w, site


def target_value(site: Path) -> str:
    return (site / "password").read_text()


def test_target_unreachable_keeps_old_and_pending_then_retries(flaky: tuple[World, Path]
                                                               ) -> None:
    w, site = flaky
    req, old = use(w, "app-admin")
    (site / "mode").write_text("down")
    result = w.vault.checkin(w.s("alice"), req)
    assert result.outcome == "failed"
    cred = w.vault.credential("app-admin")
    assert cred.status == "rotation-failed" and cred.failure
    assert target_value(site) == old == decrypt_version(w, "app-admin")
    assert decrypt_version(w, "app-admin", "pending") not in (None, old)
    with pytest.raises(PolicyError, match="ROTATION-FAILED"):
        w.vault.request(w.s("carol"), "app-admin", "r", "t", 60)
    (site / "mode").write_text("ok")
    result = w.vault.checkin(w.s("alice"), req)  # retry: idempotent, same pending value
    assert result.outcome == "committed"
    assert target_value(site) == decrypt_version(w, "app-admin") != old


def test_lost_reply_is_recognised_on_retry(flaky: tuple[World, Path]) -> None:
    w, site = flaky
    req, old = use(w, "app-admin")
    (site / "mode").write_text("lost-reply")
    assert w.vault.checkin(w.s("alice"), req).outcome == "failed"
    pending = decrypt_version(w, "app-admin", "pending")
    assert target_value(site) == pending != old  # applied, but the reply was lost
    (site / "mode").write_text("down")  # set would fail now; verify is what must be used
    (site / "mode").write_text("ok")
    assert w.vault.reconcile(w.s("alice"), "app-admin").outcome == "committed"
    assert decrypt_version(w, "app-admin") == pending == target_value(site)


def test_rejected_by_policy_can_roll_back_and_retry_fresh(flaky: tuple[World, Path]) -> None:
    w, site = flaky
    req, old = use(w, "app-admin")
    (site / "mode").write_text("reject")
    result = w.vault.checkin(w.s("alice"), req)
    assert result.outcome == "failed" and "policy" in result.message
    assert target_value(site) == old == decrypt_version(w, "app-admin")
    first_pending = decrypt_version(w, "app-admin", "pending")
    (site / "mode").write_text("ok")
    result = w.vault.reconcile(w.s("alice"), "app-admin", fresh=True)
    assert result.outcome == "committed"
    assert decrypt_version(w, "app-admin") != first_pending
    assert target_value(site) == decrypt_version(w, "app-admin")
    events = [e["event"] for e in file_store(w.vault).audit.entries()]
    assert "rotate.rollback" in events


def test_fresh_rollback_refused_when_the_target_may_have_the_pending_value(
        flaky: tuple[World, Path]) -> None:
    w, site = flaky
    req, _ = use(w, "app-admin")
    (site / "mode").write_text("lost-reply")
    w.vault.checkin(w.s("alice"), req)
    (site / "mode").write_text("ok")
    with pytest.raises(PolicyError, match="already accepts the pending"):
        w.vault.reconcile(w.s("alice"), "app-admin", fresh=True)


def test_rotate_many_reports_each_credential(flaky: tuple[World, Path]) -> None:
    w, site = flaky
    w.add("gen-1")
    w.add("gen-2")
    busy = w.checkout("gen-2")
    results = w.vault.rotate_many(w.s("bob"), ["gen-1", "gen-2", "app-admin", "missing"])
    outcome = {r.credential: r.outcome for r in results}
    # the site command needs no current value, so a sweep without the holder works
    assert outcome == {"gen-1": "committed", "gen-2": "skipped", "app-admin": "committed",
                       "missing": "failed"}
    assert target_value(site) == decrypt_version(w, "app-admin") != "flaky-initial"
    assert w.vault.checkout(busy).state == "approved"  # an open checkout is left alone


# -- D1: SIGKILL during rotation against a real PostgreSQL -----------------------------------
def _checkin_child(root: str, session: Session, req: str, now: float) -> None:
    Vault(Path(root), FakeClock(now), allow_weak_kdf=True).checkin(session, req)


def test_sigkill_during_postgres_rotation_never_locks_out(tmp_path: Path,
                                                          postgres_server: PostgresServer
                                                          ) -> None:
    w = make_world(tmp_path)
    role, initial = f"gk_kill_{next(_n)}", new_password()
    postgres_server.create_role(role, initial)
    add(w, "pg-kill", "postgres", initial, postgres_server.role_conninfo(role))
    ctx = mp.get_context("fork")
    trials = 1000 if SOAK else 200
    rng = random.Random(20261125)
    outcomes: dict[str, int] = {}
    # one uninterrupted check-in tells how long a rotation takes here
    req, _ = use(w, "pg-kill")
    t0 = time.perf_counter()
    w.vault.checkin(w.s("alice"), req)
    span = max(time.perf_counter() - t0, 0.02) * 1.3
    for _ in range(trials):
        req, old = use(w, "pg-kill")
        child = ctx.Process(target=_checkin_child,
                            args=(str(w.root), w.s("alice"), req, w.clock.now()))
        child.start()
        assert child.pid is not None
        time.sleep(rng.uniform(0, span))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        # the vault opens and the target accepts a value the vault can decrypt
        current = decrypt_version(w, "pg-kill")
        pending = decrypt_version(w, "pg-kill", "pending")
        accepts = [v for v in (current, pending) if v and pg_login(postgres_server, role, v)]
        assert accepts, "the target's password is neither the current nor the pending value"
        state = w.vault.checkout(req).state
        key = f"{state}{'+pending' if pending else ''}"
        outcomes[key] = outcomes.get(key, 0) + 1
        # the next attempt completes the intent
        if state != "closed":
            result = w.vault.checkin(w.s("alice"), req)
            assert result.outcome in ("committed", "nothing-to-do"), result.message
        final = decrypt_version(w, "pg-kill")
        assert final and pg_login(postgres_server, role, final)
        assert not pg_login(postgres_server, role, old)
        assert decrypt_version(w, "pg-kill", "pending") is None
    assert w.vault.verify_audit().ok
    print("D1 outcomes after SIGKILL:", outcomes)
    # the kills must have landed at different stages to prove anything
    assert len(outcomes) >= 2, outcomes


def test_flagged_credentials_index_follows_the_status(flaky: tuple[World, Path]) -> None:
    w, site = flaky
    req, _ = use(w, "app-admin")
    (site / "mode").write_text("down")
    w.vault.checkin(w.s("alice"), req)
    assert [(f["name"], f["status"]) for f in w.vault.flagged()] == [
        ("app-admin", "rotation-failed")]
    assert any(a.startswith("ROTATION-FAILED: app-admin") for a in [x.message for x in w.vault.alerts()])
    (site / "mode").write_text("ok")
    w.vault.reconcile(w.s("alice"), "app-admin")
    assert w.vault.flagged() == []
