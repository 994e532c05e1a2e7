"""One stuck item never stops everyone (issue 15).

The sweep every authenticated command runs is best-effort, item by item: a
failure is a signed ``sweep.item-failed`` entry (a fixed short reason, never a
value or the target's output), shown by ``alerts``, retried after a back-off,
and never fails the command. An admin can record a revocation by hand.
Real failing targets: a command script that exits 1, a PostgreSQL that is down,
and real ``glasskey`` processes.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from checkout_world import World, make_world
from glasskey.core.errors import PolicyError
from helpers import file_store
from servers import start_postgres
from test_cli import Cli, cli, fresh_step  # noqa: F401 (the cli fixture)

STDERR_CANARY = "connector-output-canary-91b2"

FAILING = f"""#!/usr/bin/env python3
import json, sys, pathlib
base = pathlib.Path(__file__).parent
req = json.load(sys.stdin)
(base / "calls").open("a").write(req["action"] + "\\n")
if (base / "mode").read_text().strip() == "down":
    print("{STDERR_CANARY}: cannot reach the directory", file=sys.stderr)
    sys.exit(1)
target = base / "password"
if req["action"] == "verify":
    sys.exit(0 if target.exists() and target.read_text() == req["value"] else 1)
target.write_text(req["value"])
"""


def make_site(root: Path) -> Path:
    site = root / "site"
    site.mkdir()
    script = site / "revoke"
    script.write_text(FAILING)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (site / "mode").write_text("down")
    return site


def calls(site: Path) -> int:
    path = site / "calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def events(w: World, name: str) -> list[dict[str, Any]]:
    return [e for e in file_store(w.vault).audit.entries() if e["event"] == name]


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path, ("alice", "bob", "carol", "dave"))
    world.add("db-root", "v1")
    for name in ("alice", "bob", "carol", "dave"):
        world.s(name)  # unlock now: each first unlock moves the fake clock 30 s
    return world


def test_a_failing_revocation_is_recorded_alerted_and_retried_with_backoff(
        w: World, tmp_path: Path) -> None:
    site = make_site(tmp_path)
    onb = w.vault.issue_onboarding(w.s("bob"), "new-hire", "first day", "HR-1", "email",
                                   expires_in=60, connector="command",
                                   target=str(site / "revoke"))
    w.clock.advance(61)
    report = w.vault.sweep(w.s("bob"))  # must not raise
    assert report.errors and onb.id in report.errors[0]
    failed = events(w, "sweep.item-failed")
    assert [(e["actor"], e["subject"]) for e in failed] == [("bob", onb.id)]
    assert failed[0]["sig"], "the failure is signed by the sweeping session"
    assert failed[0]["details"]["reason"] == \
        "the target refused the change or could not be reached"
    # (the pre-existing ROTATION-FAILED alert and rotate.failed entry keep the
    # connector's scrubbed first stderr line; the sweep's own records never do)
    sweep_alerts = [a for a in [x.message for x in w.vault.alerts()] if a.startswith("SWEEP FAILING")]
    assert STDERR_CANARY not in json.dumps(failed) + json.dumps(sweep_alerts)
    assert STDERR_CANARY not in json.dumps(w.vault.sweep_failures())
    assert [a.split(":")[1].split()[0] for a in sweep_alerts] == [onb.id]
    # everyone else keeps working
    req = w.vault.request(w.s("carol"), "db-root", "r", "t", 600)
    w.vault.approve(w.s("bob"), req.id)
    # back-off: the next sweeps inside the wait do not touch the target
    n = calls(site)
    w.vault.sweep(w.s("bob"))
    w.vault.sweep(w.s("dave"))
    assert calls(site) == n and len(events(w, "sweep.item-failed")) == 1
    # after the wait it is retried (and fails again, waiting twice as long)
    w.clock.advance(61)
    w.vault.sweep(w.s("bob"))
    assert calls(site) > n
    again = events(w, "sweep.item-failed")
    assert len(again) == 2 and again[1]["details"]["attempt"] == 2
    assert again[1]["details"]["retry_after"] == 2 * again[0]["details"]["retry_after"]
    # the target comes back: the next retry succeeds and the alert goes
    (site / "mode").write_text("up")
    w.clock.advance(121)
    w.vault.sweep(w.s("bob"))
    co = w.vault.checkout(onb.id)
    assert co.state == "closed" and co.closed_reason == "expired"
    assert events(w, "sweep.item-recovered")
    assert not any("SWEEP FAILING" in a for a in [x.message for x in w.vault.alerts()])
    assert w.vault.sweep_failures() == {}


def test_other_items_are_still_swept_when_one_fails(w: World, tmp_path: Path) -> None:
    site = make_site(tmp_path)
    w.vault.issue_onboarding(w.s("bob"), "new-hire", "first day", "HR-1", "email",
                             expires_in=60, connector="command", target=str(site / "revoke"))
    stale = w.vault.request(w.s("carol"), "db-root", "r", "t", 600)
    w.clock.advance(3601)
    w.vault.sweep(w.s("bob"))  # clock rules: records that its clock is ahead
    w.vault.sweep(w.s("bob"))
    assert w.vault.checkout(stale.id).closed_reason == "expired"
    assert events(w, "sweep.item-failed")


def test_an_admin_records_a_revocation_by_hand(w: World, tmp_path: Path) -> None:
    site = make_site(tmp_path)
    onb = w.vault.issue_onboarding(w.s("bob"), "new-hire", "first day", "HR-1", "email",
                                   expires_in=60, connector="command",
                                   target=str(site / "revoke"))
    w.clock.advance(61)
    w.vault.sweep(w.s("bob"))
    with pytest.raises(PolicyError, match="admin"):
        w.vault.revoke_onboarding_manually(w.s("carol"), onb.id, "disabled in AD")
    done = w.vault.revoke_onboarding_manually(w.s("dave"), onb.id, "disabled in AD by hand")
    assert done.state == "closed" and done.closed_reason == "revoked"
    assert w.vault.credential(onb.cred_name).status == "revoked"
    ev = events(w, "onboarding.revoked")[-1]
    assert ev["actor"] == "dave" and ev["details"]["how"] == "manual"
    assert ev["details"]["note"] == "disabled in AD by hand"
    assert not any(onb.id in a or onb.cred_name in a for a in [x.message for x in w.vault.alerts()])
    n = calls(site)
    w.clock.advance(7200)
    w.vault.sweep(w.s("bob"))
    w.vault.sweep(w.s("bob"))
    assert calls(site) == n, "a revoked item is not retried"
    assert onb.id in [i.id for i in w.vault.review_queue()]


def test_a_postgres_target_that_is_down_stops_nobody(w: World) -> None:
    pg = start_postgres()
    try:
        pg.create_role("onb_hire", "initial-onb-password-1")
        target = pg.role_conninfo("onb_hire")
        onb = w.vault.issue_onboarding(w.s("bob"), "hire", "first day", "HR-2", "email",
                                       expires_in=60, connector="postgres", target=target)
    finally:
        pg.stop()
    w.clock.advance(61)
    w.vault.sweep(w.s("bob"))
    failed = events(w, "sweep.item-failed")
    assert failed and failed[0]["subject"] == onb.id
    req = w.vault.request(w.s("carol"), "db-root", "r", "t", 600)
    w.vault.approve(w.s("bob"), req.id)
    assert w.vault.reveal(w.s("carol"), req.id).reveal() == "v1"
    assert any(a.startswith(f"SWEEP FAILING: {onb.id}") for a in [x.message for x in w.vault.alerts()])
    w.vault.revoke_onboarding_manually(w.s("dave"), onb.id, "role dropped by the DBA")
    assert w.vault.sweep_failures() == {}


def test_cli_one_failing_target_does_not_stop_other_operators(cli: Cli) -> None:  # noqa: F811
    site = make_site(cli.root)
    (cli.root / "vault" / "glasskey.toml").write_text("[sweep]\nretry_after = 2\n")
    fresh_step()
    r = cli("cred", "add", "db-root", *cli.as_("bob", -30))
    assert r.code == 0, r.err
    # A requester issues from a site template: only an admin or the site policy
    # (outside the vault) says where an onboarding secret goes.
    policy = cli.root / "site.toml"
    policy.write_text(f'[command]\nallowed_dirs = ["{cli.root.resolve()}"]\n'
                      '[onboarding.templates.hire]\nconnector = "command"\n'
                      f'target = "{site / "revoke"}"\n')
    cli.env["GLASSKEY_SITE_CONFIG"] = str(policy)
    r = cli("onboard", "issue", "--identity", "hire", "--reason", "first day", "--ticket",
            "HR-3", "--channel", "email", "--expires", "1s", "--template", "hire",
            "--json", *cli.as_("alice", -30))
    assert r.code == 0, r.err
    onb = json.loads(r.out)["id"]
    time.sleep(1.5)
    # another operator's ordinary command sweeps, the revocation fails, the command works
    r = cli("request", "db-root", "--reason", "x", "--ticket", "T-1", "--duration", "10m",
            "--json", *cli.as_("alice", 0))
    assert r.code == 0, r.err
    assert onb in r.err and STDERR_CANARY not in r.err
    req = json.loads(r.out)["id"]
    r = cli("alerts", "--json")
    assert any(a.startswith(f"SWEEP FAILING: {onb}") for a in json.loads(r.out))
    first = calls(site)
    time.sleep(2.5)
    r = cli("approve", req, *cli.as_("bob", 0))
    assert r.code == 0, r.err
    assert calls(site) > first, "the next sweep after the back-off retries the item"
    r = cli("audit", "export", "--format", "jsonl")
    failed = [json.loads(x) for x in r.out.splitlines() if '"sweep.item-failed"' in x]
    assert [f["details"]["attempt"] for f in failed] == [1, 2]
    assert {f["actor"] for f in failed} == {"alice", "bob"}
    r = cli("onboard", "revoke", onb, "--manual", *cli.as_("bob", 30))
    assert r.code == 2  # no --note
    r = cli("onboard", "revoke", onb, "--manual", "--note", "account disabled by hand",
            "--json", *cli.as_("bob", 30))
    assert r.code == 0, r.err
    assert json.loads(r.out)["closed_reason"] == "revoked"
    r = cli("alerts", "--json")
    assert not any("SWEEP FAILING" in a for a in json.loads(r.out))
    r = cli("audit", "verify", "--json")
    assert r.code == 0 and json.loads(r.out)["ok"] is True


def test_a_released_onboarding_secret_whose_revocation_fails_is_retried(
        w: World, tmp_path: Path) -> None:
    site = make_site(tmp_path)
    onb = w.vault.issue_onboarding(w.s("bob"), "hire", "first day", "HR-4", "email",
                                   expires_in=3600, connector="command",
                                   target=str(site / "revoke"))
    w.vault.approve(w.s("dave"), onb.id)
    w.vault.cancel(w.s("bob"), onb.id)  # approved, then cancelled: a release
    co = w.vault.checkout(onb.id)
    assert co.released and co.state == "rotating"
    cancelled = [e for e in events(w, "onboarding.cancelled") if e["subject"] == onb.id]
    assert cancelled[-1]["details"]["released"] is True
    w.vault.sweep(w.s("bob"))
    failed = events(w, "sweep.item-failed")
    assert [(e["subject"], e["details"]["what"]) for e in failed] == [(onb.id, "release")]
    (site / "mode").write_text("up")
    w.clock.advance(61)
    w.vault.sweep(w.s("bob"))
    co = w.vault.checkout(onb.id)
    assert co.state == "closed" and w.vault.credential(onb.cred_name).status == "revoked"
    assert onb.id in [i.id for i in w.vault.review_queue()]
