"""Clock rules (issue 15, "Time is whatever the acting client says"; SECURITY.md).

* Entry times never run backwards along the chain: a client more than
  CLOCK_SKEW (120 s) behind the chain's newest entry refuses to write, in one
  sentence, exit 1; within the bound its entry time is clamped to the chain's.
* An approval's expiry is its entry time plus the policy window, and a reveal
  refuses one that claims more; a lease ends at most the policy maximum after
  the reveal (or kit use) entry.
* A sweep whose clock is more than CLOCK_SKEW ahead of the chain leaves others'
  items alone unless they were due by the chain's time plus the bound.

With the injected FakeClock, and with real ``glasskey`` processes whose clock is
shifted by GLASSKEY_TEST_CLOCK_OFFSET (honoured only with
GLASSKEY_INSECURE_FAST_KDF=1).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from checkout_world import SEEDS as WORLD_SEEDS
from checkout_world import World, make_world, passphrase
from glasskey.core.clock import CLOCK_SKEW, FakeClock
from glasskey.core.errors import ClockSkewError, IntegrityError
from glasskey.core.session import Session
from glasskey.core.vault import Vault
from helpers import file_store
from test_cli import SEEDS, Cli, cli, fresh_step  # noqa: F401 (the cli fixture)

HOUR = 3600.0


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path, ("alice", "bob", "carol", "dave"))
    world.add("db-root", "v1")
    world.add("app", "a1")
    for name in ("alice", "bob", "carol", "dave"):
        world.s(name)
    return world


def entries(w: World) -> list[dict[str, Any]]:
    return list(file_store(w.vault).audit.entries())


def skewed(w: World, name: str, offset: float) -> tuple[Vault, Session]:
    """``name``'s own process, with a clock ``offset`` seconds off the world's.

    It unlocks first (on a fresh TOTP step, with the world's time: a step older
    than one already used is a replay), then its clock jumps.
    """
    w.clock.advance(30)
    clock = FakeClock(w.clock.now())
    vault = Vault(w.root, clock, allow_weak_kdf=True)
    session = vault.unlock(name, passphrase(name), pyotp.TOTP(WORLD_SEEDS[name]).at(
        clock.now()))
    clock.advance(offset)
    return vault, session


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_a_clock_slightly_behind_is_clamped_to_the_chain(w: World) -> None:
    vault, bob = skewed(w, "bob", -100)
    before = entries(w)[-1]["time"]
    req = w.vault.request(w.s("alice"), "db-root", "r", "t", 600)
    vault.approve(bob, req.id)
    times = [e["time"] for e in entries(w)]
    assert times == sorted(times), "entry times ran backwards"
    assert times[-1] >= before
    # the claim window starts at the approval's entry time, not the lagging clock
    approval = vault.checkout(req.id).approvals[0]
    assert approval.at >= w.clock.now() - 1
    assert approval.expires - approval.at == 15 * 60


def test_a_clock_far_behind_refuses_to_write_and_writes_nothing(w: World) -> None:
    vault, alice = skewed(w, "alice", -(CLOCK_SKEW + 60))
    w.vault.request(w.s("bob"), "app", "r", "t", 600)  # the chain's newest time: now
    seq = w.vault.seq()
    with pytest.raises(ClockSkewError) as err:
        vault.request(alice, "db-root", "r", "t", 600)
    assert err.value.exit_code == 1 and "\n" not in str(err.value)
    assert "behind" in str(err.value) and "clock" in str(err.value)
    assert w.vault.seq() == seq
    assert [c.cred_name for c in w.vault.checkouts(open_only=True)] == ["app"]


def test_a_kit_use_with_the_clock_a_day_back_is_refused(w: World) -> None:
    w.vault.issue_kit([w.s("bob"), w.s("dave")])
    code = " ".join(w.vault.kit_part(w.s(n)) for n in ("bob", "dave"))
    vault, alice = skewed(w, "alice", -24 * HOUR)
    seq = w.vault.seq()
    with pytest.raises(ClockSkewError):
        vault.emergency_reveal(alice, "db-root", code, "outage", "INC-1", 600)
    assert w.vault.seq() == seq  # nothing moved into the previous period
    # with a right clock the lease starts at the entry's time and ends within policy
    co, _ = w.vault.emergency_reveal(w.s("alice"), "db-root", code, "outage", "INC-1",
                                     600)
    last = [e for e in entries(w) if e["event"] == "emergency.used"][-1]
    assert co.lease_expires is not None
    assert stamp(co.lease_expires - 600) == last["time"]


def test_an_approver_clock_ahead_does_not_stretch_the_claim_window(w: World) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "r", "t", 600)
    vault, bob = skewed(w, "bob", 50 * 60)
    vault.approve(bob, req.id)
    co = w.vault.checkout(req.id)
    assert co.approvals[0].expires - co.approvals[0].at == 15 * 60
    # 17 real minutes later the requester's clock is 33 min behind the approval's
    # entry: it refuses to write at all, so the stretched window is never used.
    w.clock.advance(17 * 60)
    with pytest.raises(ClockSkewError, match="by bob"):
        w.vault.reveal(w.s("alice"), req.id)


def test_a_window_longer_than_the_policy_is_refused_at_reveal(w: World) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "r", "t", 600)
    w.vault.approve(w.s("bob"), req.id)
    with w.vault.store.transaction() as txn:
        doc = txn.table("requests").get(req.id)
        assert doc is not None
        doc["approvals"][0]["at"] -= HOUR  # the approval now claims a 75-minute window
        txn.table("requests").put(req.id, doc)
    with pytest.raises(IntegrityError, match="policy"):
        w.vault.reveal(w.s("alice"), req.id)
    refused = [e["details"]["why"] for e in entries(w) if e["event"] == "checkout.refused"]
    assert refused == ["claim-window-too-long"]


def test_a_lease_longer_than_the_policy_is_refused_at_reveal(w: World) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "r", "t", 600)
    w.vault.approve(w.s("bob"), req.id)
    with w.vault.store.transaction() as txn:
        doc = txn.table("requests").get(req.id)
        assert doc is not None
        doc["duration"] = 9 * 3600
        txn.table("requests").put(req.id, doc)
    with pytest.raises(IntegrityError, match="lease"):
        w.vault.reveal(w.s("alice"), req.id)
    assert w.vault.checkout(req.id).state == "approved"


def test_a_sweep_far_ahead_leaves_others_items_alone(w: World) -> None:
    lease = w.vault.request(w.s("alice"), "db-root", "r", "t", 4 * 3600)
    w.vault.approve(w.s("bob"), lease.id)
    w.vault.reveal(w.s("alice"), lease.id)
    waiting = w.vault.request(w.s("bob"), "app", "r", "t", 600)
    vault, carol = skewed(w, "carol", 5 * HOUR)
    report = vault.sweep(carol)
    assert report.expired == [] and report.overdue == [] and report.rotated == []
    assert w.vault.checkout(lease.id).state == "checked-out"
    assert w.vault.checkout(waiting.id).state == "requested"
    assert w.vault.credential("db-root").version == 1
    held = [e for e in entries(w) if e["event"] == "sweep.clock-ahead"]
    assert held and held[-1]["actor"] == "carol" and held[-1]["details"]["held_back"] == 2
    # the skew is now in the chain, signed by carol: every right clock refuses to
    # write (loud) and names her
    with pytest.raises(ClockSkewError, match="by carol"):
        w.vault.checkin(w.s("alice"), lease.id)


def test_a_sweep_within_the_bound_still_expires_what_is_due(w: World) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "r", "t", 600)
    w.vault.approve(w.s("bob"), req.id)
    w.clock.advance(15 * 60 + 1)
    # something was written a minute ago: the chain's time is close to the clock
    w.vault.request(w.s("carol"), "app", "r", "t", 600)
    w.clock.advance(60)
    report = w.vault.sweep(w.s("dave"))
    assert req.id in report.expired
    assert w.vault.checkout(req.id).released


def test_own_items_follow_own_clock(w: World) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "r", "t", 600)
    vault, alice = skewed(w, "alice", 2 * HOUR)
    report = vault.sweep(alice)
    assert req.id in report.expired  # only her own request: nobody else is affected


# -- through real processes with a shifted clock ------------------------------------------
def shifted(c: Cli, offset: float) -> Cli:
    env = dict(c.env, GLASSKEY_INSECURE_FAST_KDF="1",
               GLASSKEY_TEST_CLOCK_OFFSET=str(offset))
    return Cli(c.root, env)


def as_at(c: Cli, who: str, at: float) -> list[str]:
    return ["--as", who, "--totp", pyotp.TOTP(SEEDS[who]).at(at), "--passphrase-file",
            str(c.root / f"{who}.pass")]


def test_cli_shifted_clocks(cli: Cli) -> None:  # noqa: F811
    fresh_step()
    r = cli("cred", "add", "db-root", *cli.as_("bob", -30))
    assert r.code == 0, r.err
    seq = len(cli("audit", "export", "--format", "jsonl").out.splitlines())
    # a client a day behind (alice's first TOTP step, so not a replay): one
    # sentence, exit 1, nothing written
    back = -24 * HOUR
    r = shifted(cli, back)("request", "db-root", "--reason", "x", "--ticket", "T-0",
                           "--duration", "10m", *as_at(cli, "alice", time.time() + back))
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert "behind" in r.err and "clock" in r.err
    assert len(cli("audit", "export", "--format", "jsonl").out.splitlines()) == seq
    r = cli("request", "db-root", "--reason", "x", "--ticket", "T-1", "--duration", "10m",
            "--json", *cli.as_("alice", -30))
    assert r.code == 0, r.err
    req = json.loads(r.out)["id"]
    # the switch is ignored without the insecure-KDF switch (a real vault's processes)
    env = dict(cli.env, GLASSKEY_TEST_CLOCK_OFFSET=str(back))
    env.pop("GLASSKEY_INSECURE_FAST_KDF", None)
    r = Cli(cli.root, env)("approve", req, "--json", *cli.as_("bob", 0))
    assert r.code == 0, r.err
    r = cli("cancel", req, *cli.as_("alice", 0))
    assert r.code == 0, r.err
    # a client five hours ahead: its sweep closes nobody's request
    r = cli("request", "db-root", "--reason", "y", "--ticket", "T-2", "--duration", "10m",
            "--json", *cli.as_("alice", 30))
    assert r.code == 0, r.err
    other = json.loads(r.out)["id"]
    ahead = 5 * HOUR
    r = shifted(cli, ahead)("cred", "add", "other", *as_at(cli, "bob", time.time() + ahead))
    assert r.code == 0, r.err
    rows = json.loads(cli("request", "list", "--json").out)
    assert [(x["id"], x["state"]) for x in rows] == [(other, "requested")]
    log = [json.loads(x) for x in cli("audit", "export", "--format", "jsonl").out.splitlines()]
    assert any(e["event"] == "sweep.clock-ahead" and e["actor"] == "bob" for e in log)
    assert not any(e["event"] == "checkout.expired" for e in log)
    times = [e["time"] for e in log]
    assert times == sorted(times)
    assert os.environ.get("GLASSKEY_TEST_CLOCK_OFFSET") is None
