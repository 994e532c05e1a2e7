"""An approval is a release (issue 10, attack 6: offline redemption).

Once a request holds its needed approvals, the requester can open the grant
offline with their own key. So every ending after that point (cancel by the
requester or an admin, deny after approval, approval expiry found by reveal or
by anyone's sweep) must rotate the credential as check-in does and queue a
review; the closing event says ``"released": true``. Each test plays the
attacker: alice opens the grant with core.envelope alone, then ends the request.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from checkout_world import World, decrypt_version, make_world
from glasskey.core.credentials import CredentialSpec
from glasskey.core.envelope import (
    decrypt_secret,
    grant_info,
    open_grant,
    open_own_share,
    recover_dek,
)
from glasskey.core.errors import DecryptError, IntegrityError, PolicyError
from glasskey.core.secret import SecretValue
from helpers import file_store
from test_cli import SEEDS, Cli, cli, fresh_step  # noqa: F401 (the cli fixture)

OLD = "v1-the-value-alice-must-not-keep"


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path, ("alice", "bob", "carol", "dave"))
    world.add("db-root", OLD)
    return world


def events(w: World, name: str) -> list[dict[str, Any]]:
    return [e for e in file_store(w.vault).audit.entries() if e["event"] == name]


def offline_open(w: World, req_id: str, who: str = "alice") -> str:
    """What alice can do with the files and her own key, without glasskey's consent."""
    s = w.s(who)
    with w.vault.store.read() as txn:
        req = txn.table("requests").get(req_id)
        sealed = txn.table("sealed").get(req["cred_id"])  # type: ignore[index]
    assert req is not None and sealed is not None
    vdoc = sealed["current"]
    vid, cid = w.vault.vault_id, req["cred_id"]
    shares = [open_own_share(vid, cid, vdoc, s.operator_id, s.hpke_priv)]
    for a in req["approvals"]:
        info = grant_info(vid, req_id, cid, int(req["version"]), s.operator_id,
                          a["approver_id"], float(a["expires"]))
        shares.append(open_grant(a["grant"], s.hpke_priv, info))
    dek = recover_dek(vid, cid, vdoc, shares)
    return decrypt_secret(vid, cid, vdoc, dek).reveal()


def old_shares_open_current(w: World, req_id: str) -> bool:
    """Do the shares alice used still open the credential's *current* version?"""
    s = w.s("alice")
    with w.vault.store.read() as txn:
        req = txn.table("requests").get(req_id)
        sealed = txn.table("sealed").get(req["cred_id"])  # type: ignore[index]
    assert req is not None and sealed is not None
    vid, cid = w.vault.vault_id, req["cred_id"]
    try:
        own = open_own_share(vid, cid, sealed["current"], s.operator_id, s.hpke_priv)
        recover_dek(vid, cid, sealed["current"], [own])
    except (DecryptError, IntegrityError, ValueError):
        return False
    return True


def assert_released_and_rotated(w: World, req_id: str, event: str) -> None:
    cred = w.vault.credential("db-root")
    assert cred.version == 2, "a released credential must be rotated"
    assert decrypt_version(w, "db-root") != OLD
    co = w.vault.checkout(req_id)
    assert co.state == "closed" and co.released
    assert co.to_public(w.clock.now())["released"] is True
    assert co.rotation.get("outcome") == "committed"
    assert req_id in [i.id for i in w.vault.review_queue()]
    closing = [e for e in events(w, event) if e["subject"] == req_id]
    assert closing and closing[-1]["details"]["released"] is True
    intents = [e for e in events(w, "rotate.intent") if e["details"]["request"] == req_id]
    assert intents, "the rotation must name the released request"
    # the approval's details stay as the report computes releases from them
    approved = [e for e in events(w, "checkout.approved") if e["subject"] == req_id]
    assert approved[-1]["details"]["approvals"] >= approved[-1]["details"]["needed"]


def test_offline_redemption_then_cancel_is_a_release(w: World) -> None:
    req = w.checkout("db-root")
    assert offline_open(w, req) == OLD  # the attack: the value, with no reveal record
    w.vault.cancel(w.s("alice"), req)
    assert_released_and_rotated(w, req, "checkout.cancelled")
    assert w.vault.checkout(req).closed_reason == "cancelled"
    # the value alice took is no longer the credential's value
    with pytest.raises((DecryptError, IntegrityError)):
        offline_open(w, req)
    # and the request cannot be revealed any more
    with pytest.raises(PolicyError):
        w.vault.reveal(w.s("alice"), req)


def test_admin_cancel_after_approval_is_a_release(w: World) -> None:
    req = w.checkout("db-root")
    offline_open(w, req)
    w.vault.cancel(w.s("dave"), req)  # dave: admin, not the holder; generated: he can rotate
    assert_released_and_rotated(w, req, "checkout.cancelled")


def test_deny_after_approval_is_a_release(w: World) -> None:
    req = w.checkout("db-root")
    assert offline_open(w, req) == OLD
    w.vault.deny(w.s("carol"), req, "changed my mind")
    assert_released_and_rotated(w, req, "checkout.denied")


def test_approval_expiry_found_by_another_operators_sweep_is_a_release(w: World) -> None:
    req = w.checkout("db-root")
    offline_open(w, req)
    w.clock.advance(16 * 60)
    first = w.vault.sweep(w.s("carol"))
    # Clock rules: nothing was written for 16 min, so the first sweep only records
    # that its clock is ahead of the chain; the next one acts.
    assert req not in first.expired and events(w, "sweep.clock-ahead")
    second = w.vault.sweep(w.s("carol"))
    assert req in second.expired
    assert_released_and_rotated(w, req, "checkout.expired")


def test_approval_expiry_found_by_reveal_is_a_release(w: World) -> None:
    req = w.checkout("db-root")
    offline_open(w, req)
    w.clock.advance(16 * 60)
    with pytest.raises(PolicyError, match="expired"):
        w.vault.reveal(w.s("alice"), req)
    assert_released_and_rotated(w, req, "checkout.expired")


def test_closing_before_the_approvals_is_not_a_release(w: World) -> None:
    w.add("two-man", "k3-value", k=3)
    req = w.vault.request(w.s("alice"), "two-man", "r", "t", 600).id
    w.vault.approve(w.s("bob"), req)  # 1 of 2 approvals: no usable grant yet
    w.vault.cancel(w.s("alice"), req)
    co = w.vault.checkout(req)
    assert co.state == "closed" and not co.released
    assert w.vault.credential("two-man").version == 1
    assert req not in [i.id for i in w.vault.review_queue()]
    assert "released" not in events(w, "checkout.cancelled")[-1]["details"]
    plain = w.vault.request(w.s("alice"), "db-root", "r", "t", 600).id
    w.vault.deny(w.s("bob"), plain, "no")
    assert w.vault.credential("db-root").version == 1 and not w.vault.checkout(plain).released


SITE_SCRIPT = """#!/usr/bin/env python3
import json, sys, pathlib
base = pathlib.Path(__file__).parent
req = json.load(sys.stdin)
target = base / "password"
if req["action"] == "verify":
    sys.exit(0 if target.read_text() == req["value"] else 1)
target.write_text(req["value"])
"""


def test_release_a_non_holder_cannot_rotate_stays_loud_until_the_holder_does(
        w: World, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    script = site / "set-password"
    script.write_text(SITE_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (site / "password").write_text("app-initial")
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        "app", connector="command", secret=SecretValue("app-initial"), target=str(script)))
    req = w.checkout("app")
    offline_open(w, req)
    w.vault.cancel(w.s("dave"), req)  # an admin, who cannot give the target the old value
    co = w.vault.checkout(req)
    assert co.released and co.state == "rotating"
    assert any("RELEASED, NOT ROTATED" in a and req in a for a in [x.message for x in w.vault.alerts()])
    with pytest.raises(PolicyError, match="app already has an open checkout"):
        w.vault.request(w.s("carol"), "app", "r", "t", 60)
    w.vault.sweep(w.s("carol"))  # others leave it alone
    assert w.vault.checkout(req).state == "rotating"
    w.vault.sweep(w.s("alice"))  # the holder's next command rotates it
    co = w.vault.checkout(req)
    assert co.state == "closed" and co.rotation["outcome"] == "committed"
    assert (site / "password").read_text() != "app-initial"
    assert not any("RELEASED" in a for a in [x.message for x in w.vault.alerts()])
    assert req in [i.id for i in w.vault.review_queue()]


def test_request_list_json_shows_the_release(w: World) -> None:
    req = w.checkout("db-root")
    w.vault.cancel(w.s("alice"), req)
    rows = [c.to_public(w.clock.now()) for c in w.vault.checkouts()]
    row = next(r for r in rows if r["id"] == req)
    assert row["state"] == "closed" and row["released"] is True
    assert json.dumps(row)  # serialisable for --json


# -- through the real CLI (real glasskey processes, real time, real TOTP) -------------------


def test_cli_offline_redemption_then_cancel_is_a_release(cli: Cli) -> None:  # noqa: F811
    import time

    import pyotp
    from glasskey.core.vault import Vault

    (cli.root / "secret").write_text(OLD + "\n")
    fresh_step()
    r = cli("cred", "add", "db-root", "--secret-file", str(cli.root / "secret"),
            *cli.as_("bob", -30))
    assert r.code == 0, r.err
    r = cli("request", "db-root", "--reason", "outage", "--ticket", "INC-7", "--duration",
            "30m", "--json", *cli.as_("alice", -30))
    assert r.code == 0, r.err
    req = json.loads(r.out)["id"]
    r = cli("approve", req, "--json", *cli.as_("bob", 0))
    assert r.code == 0 and json.loads(r.out)["state"] == "approved", r.err
    # alice, offline, with her own key and the files: no glasskey command involved
    vault = Vault(cli.root / "vault", allow_weak_kdf=True)
    alice = vault.unlock("alice", "alice cli passphrase",
                         pyotp.TOTP(SEEDS["alice"]).at(time.time()))
    with vault.store.read() as txn:
        doc = txn.table("requests").get(req)
        sealed = txn.table("sealed").get(doc["cred_id"])  # type: ignore[index]
    assert doc is not None and sealed is not None
    vid, cid, vdoc = vault.vault_id, doc["cred_id"], sealed["current"]
    shares = [open_own_share(vid, cid, vdoc, alice.operator_id, alice.hpke_priv)]
    for a in doc["approvals"]:
        shares.append(open_grant(a["grant"], alice.hpke_priv, grant_info(
            vid, req, cid, int(doc["version"]), alice.operator_id, a["approver_id"],
            float(a["expires"]))))
    stolen = decrypt_secret(vid, cid, vdoc, recover_dek(vid, cid, vdoc, shares)).reveal()
    assert stolen == OLD
    r = cli("cancel", req, "--json", *cli.as_("alice", 30))
    assert r.code == 0, r.err
    assert json.loads(r.out)["released"] is True
    r = cli("cred", "list", "--json")
    assert json.loads(r.out)[0]["version"] == 2, "the released credential was not rotated"
    r = cli("request", "list", "--all", "--json")
    row = next(c for c in json.loads(r.out) if c["id"] == req)
    assert row["state"] == "closed" and row["released"] is True
    assert row["closed_reason"] == "cancelled"
    r = cli("request", "list", "--all")
    assert "released" in r.out
    r = cli("review", "list", "--json")
    assert req in [i["id"] for i in json.loads(r.out)]
    r = cli("audit", "export", "--format", "jsonl")
    cancelled = [json.loads(line) for line in r.out.splitlines()
                 if json.loads(line)["event"] == "checkout.cancelled"]
    assert cancelled[-1]["details"]["released"] is True
    r = cli("audit", "verify", "--json")
    assert r.code == 0 and json.loads(r.out)["ok"] is True


# -- flood caps and clearing a flood (issue 15, "Flooding") --------------------------------
def set_limits(w: World, text: str) -> None:
    (w.root / "glasskey.toml").write_text(text)
    w.vault.context.forget_site()  # re-read the site settings


def test_open_requests_are_capped_per_requester(w: World) -> None:
    for n in range(6):
        w.add(f"c{n}", f"v{n}")
    for n in range(5):  # the default cap
        w.vault.request(w.s("alice"), f"c{n}", "r", "t", 600)
    with pytest.raises(PolicyError, match="cap is 5"):
        w.vault.request(w.s("alice"), "c5", "r", "t", 600)
    capped = events(w, "request.capped")
    assert capped and capped[-1]["details"] == {"what": "requests", "open": 5, "cap": 5}
    w.vault.request(w.s("carol"), "c5", "r", "t", 600)  # others are not affected
    set_limits(w, "[limits]\nopen_requests = 2\nopen_onboarding = 2\n")
    with pytest.raises(PolicyError, match="cap is 2"):
        w.vault.request(w.s("alice"), "db-root", "r", "t", 600)
    for n in range(2):
        w.vault.issue_onboarding(w.s("bob"), f"hire{n}", "r", "t", "email")
    with pytest.raises(PolicyError, match="onboarding secrets"):
        w.vault.issue_onboarding(w.s("bob"), "hire9", "r", "t", "email")
    set_limits(w, "[limits]\nopen_requests = 99999999\n")
    assert w.vault.services.requests.limit("open_requests", 5) == 1000  # a ceiling the file cannot lift


def test_an_admin_clears_a_flood_in_one_step(w: World) -> None:
    for n in range(4):
        w.add(f"c{n}", f"v{n}")
    waiting = w.vault.request(w.s("alice"), "c0", "r", "t", 600).id
    approved = w.checkout("c1")
    held = w.checkout("c2")
    w.vault.reveal(w.s("alice"), held)
    offline_open(w, approved)
    others = w.vault.request(w.s("carol"), "c3", "r", "t", 600).id
    with pytest.raises(PolicyError, match="admin"):
        w.vault.clear_requests(w.s("carol"), "alice", "flood")
    closed, skipped = w.vault.clear_requests(w.s("dave"), "alice", "flooding every credential")
    assert sorted(closed) == sorted([waiting, approved]) and skipped == [held]
    assert w.vault.checkout(waiting).state == "closed"
    assert not w.vault.checkout(waiting).released
    co = w.vault.checkout(approved)
    assert co.state == "closed" and co.released and co.rotation["outcome"] == "committed"
    assert w.vault.credential("c1").version == 2 and w.vault.credential("c0").version == 1
    assert w.vault.checkout(held).state == "checked-out"
    assert w.vault.checkout(others).state == "requested"
    summary = events(w, "requests.cleared")[-1]
    assert summary["actor"] == "dave" and summary["subject"] == "alice"
    assert summary["details"]["closed"] == 2 and summary["details"]["released"] == 1
    assert approved in [i.id for i in w.vault.review_queue()]


def test_cli_flood_cap_and_clear(cli: Cli) -> None:  # noqa: F811
    (cli.root / "vault" / "glasskey.toml").write_text("[limits]\nopen_requests = 1\n")
    fresh_step()
    r = cli("cred", "add", "a", *cli.as_("bob", -30))
    assert r.code == 0, r.err
    r = cli("cred", "add", "b", *cli.as_("bob", 0))
    assert r.code == 0, r.err
    r = cli("request", "a", "--reason", "x", "--ticket", "T", "--duration", "5m",
            *cli.as_("alice", -30))
    assert r.code == 0, r.err
    r = cli("request", "b", "--reason", "x", "--ticket", "T", "--duration", "5m",
            *cli.as_("alice", 0))
    assert r.code == 1 and "cap is 1" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("request", "clear", "--requester", "alice", "--reason", "flood", "--json",
            *cli.as_("bob", 30))
    assert r.code == 0, r.err
    assert len(json.loads(r.out)["closed"]) == 1
    r = cli("request", "b", "--reason", "x", "--ticket", "T", "--duration", "5m",
            *cli.as_("alice", 30))
    assert r.code == 0, r.err
