"""The custody review report over a scripted month of activity.

One vault lives through a month (FakeClock): dozens of real checkouts by
several requesters and approvers (one pair dominating), a denial, an expiry,
a refused self-approval, a lease that ran out, a failed rotation against a
site command (then retried), a credential left ROTATION-FAILED, failed
authentications with a lockout, an operator suspension; onboarding secrets,
the emergency kit and reviews are written as signed audit entries by real
operator sessions (those services are being built alongside). The report
must contain every item and no secret value.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from checkout_world import World, decrypt_version, make_world
from glasskey.core import report as rp
from glasskey.core.clock import iso
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import AuthError, IntegrityError, PolicyError, UsageError
from glasskey.core.models import Policy
from glasskey.core.secret import SecretValue
from helpers import file_store

DAY = 86400.0
HOUR = 3600.0

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
target.write_text(req["value"])
"""


@dataclass
class Month:
    w: World
    since: float
    until: float
    secrets: set[str] = field(default_factory=set)
    checkouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    denied: str = ""
    expired: str = ""
    refused: str = ""
    lease_expired: str = ""
    still_held: str = ""
    failed_req: str = ""
    stuck_req: str = ""
    manual_req: str = ""
    emergency: str = ""
    emergency_reviewed: str = ""
    onboarding: tuple[str, ...] = ()
    unreviewed: set[str] = field(default_factory=set)
    concern: str = ""
    kits: list[str] = field(default_factory=list)

    def record(self, who: str, event: str, subject: str, details: dict[str, Any]) -> None:
        with self.w.vault.store.transaction() as txn:
            txn.record(self.w.s(who).signer, event, subject, details)

    def review(self, who: str, item: str, kind: str, outcome: str = "ok",
               note: str = "checked against the ticket", holder: str = "") -> None:
        self.record(who, "review.recorded", item,
                    {"kind": kind, "outcome": outcome, "note": note, "holder": holder})


def _flaky_site(root: Path, name: str) -> Path:
    site = root / name
    site.mkdir()
    script = site / "set-password"
    script.write_text(FLAKY)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (site / "mode").write_text("ok")
    return site


def _checkout(m: Month, cred: str, requester: str, approver: str, n: int, *,
              hold: float = 40 * 60, duration: int = 3600, checkin: bool = True) -> str:
    w = m.w
    reason = f"incident {n}: {cred} needs hands-on repair"
    ticket = f"INC-{4000 + n}"
    req = w.vault.request(w.s(requester), cred, reason, ticket, duration)
    w.clock.advance(240)
    w.vault.approve(w.s(approver), req.id)
    w.clock.advance(60)
    m.secrets.add(w.vault.reveal(w.s(requester), req.id).reveal())
    m.checkouts[req.id] = {"cred": cred, "requester": requester, "approver": approver,
                           "reason": reason, "ticket": ticket}
    w.clock.advance(hold)
    if checkin:
        w.vault.checkin(w.s(requester), req.id)
    return req.id


def _script_month(tmp: Path) -> Month:
    w = make_world(tmp, ("alice", "bob", "carol", "dave"))
    for name in ("alice", "bob", "carol", "dave"):
        w.s(name)
    since = w.clock.now() - 200  # the vault's first entries are inside the period
    m = Month(w, since, 0.0)
    canaries = {
        "db-root": "CANARY-db-root-7f3a9c",
        "batch-provision": "CANARY-batch-21be44",
        "payments-api": "CANARY-payments-9d0e12",
    }
    for name, value in canaries.items():
        w.vault.add_credential(w.s("bob"), CredentialSpec(
            name, kind="batch" if name.startswith("batch") else "break-glass",
            secret=SecretValue(value), policy=Policy(max_duration=8 * 3600)))
        m.secrets.add(value)
    app_site = _flaky_site(tmp, "app-site")
    (app_site / "password").write_text("CANARY-app-admin-55aa01")
    edge_site = _flaky_site(tmp, "edge-site")
    (edge_site / "password").write_text("CANARY-edge-router-0c0c77")
    for name, site in (("app-admin", app_site), ("edge-router", edge_site)):
        value = (site / "password").read_text()
        w.vault.add_credential(w.s("bob"), CredentialSpec(
            name, connector="command", secret=SecretValue(value),
            target=str(site / "set-password")))
        m.secrets.add(value)
    m.kits = [w.vault.issue_kit([w.s("dave"), w.s("bob")]).id]

    # Who requests and who approves, day by day: bob approves most of alice's requests.
    plan = [
        ("db-root", "alice", "bob"), ("batch-provision", "bob", "carol"),
        ("payments-api", "carol", "dave"), ("db-root", "alice", "bob"),
        ("batch-provision", "alice", "bob"), ("payments-api", "bob", "dave"),
        ("db-root", "carol", "bob"), ("batch-provision", "alice", "carol"),
        ("payments-api", "alice", "bob"), ("db-root", "bob", "carol"),
    ]
    n = 0
    for day in range(28):
        # never backwards: entry times follow the chain (clock rules)
        w.clock.set(max(w.clock.now(), since + 200 + day * DAY + 9 * HOUR))
        for slot in range(2 if day % 3 else 1):
            cred, requester, approver = plan[(day * 2 + slot) % len(plan)]
            n += 1
            _checkout(m, cred, requester, approver, n, hold=(20 + 7 * (n % 9)) * 60)
            w.clock.advance(2 * HOUR)
        if day == 2:  # failed authentications: a lockout, then an attempt while locked
            for _ in range(5):
                with pytest.raises(AuthError):
                    w.vault.unlock("alice", "not the passphrase", w.code("alice"))
            with pytest.raises(AuthError):
                w.vault.unlock("alice", "not the passphrase", w.code("alice"))
            w.clock.advance(2 * HOUR)
        if day == 4:  # a denial and a refused self-approval
            req = w.vault.request(w.s("alice"), "payments-api", "wants a look around",
                                  "INC-DENY-1", 600)
            w.clock.advance(120)
            w.vault.deny(w.s("carol"), req.id, "no incident behind this request")
            m.denied = req.id
            req = w.vault.request(w.s("bob"), "payments-api", "batch re-run", "CHG-77", 600)
            with pytest.raises(PolicyError):
                w.vault.approve(w.s("bob"), req.id)
            m.refused = req.id
            w.vault.approve(w.s("carol"), req.id)
            w.clock.advance(60)
            m.secrets.add(w.vault.reveal(w.s("bob"), req.id).reveal())
            w.clock.advance(300)
            w.vault.checkin(w.s("bob"), req.id)
        if day == 6:  # a request nobody approved expires
            req = w.vault.request(w.s("carol"), "db-root", "night batch", "CHG-81", 600)
            m.expired = req.id
            w.clock.advance(2 * HOUR)
            w.vault.sweep(w.s("dave"))  # clock rules: the first only records the gap
            w.vault.sweep(w.s("dave"))
        if day == 9:  # rotation fails on the target (exit 3), retried the next day
            (app_site / "mode").write_text("down")
            m.failed_req = _checkout(m, "app-admin", "alice", "carol", 900, hold=1800)
            assert w.vault.credential("app-admin").status == "rotation-failed"
        if day == 10:
            (app_site / "mode").write_text("ok")
            assert w.vault.checkin(w.s("alice"), m.failed_req).outcome == "committed"
        if day == 12:  # emergency-kit use: requester + kit, loud, then rotated
            m.emergency = "remerg0001"
            pay = w.vault.credential("payments-api")
            m.record("alice", "checkout.requested", m.emergency, {
                "credential": "payments-api", "reason": "approvers unreachable, payments down",
                "ticket": "INC-EMERG-1", "duration": 1800, "version": pay.version})
            m.record("alice", "emergency.used", m.emergency,
                     {"credential": "payments-api", "kit": m.kits[0]})
            m.record("alice", "checkout.revealed", m.emergency, {
                "credential": "payments-api", "version": pay.version,
                "lease_expires": w.clock.now() + 1800, "approvers": []})
            w.clock.advance(25 * 60)
            m.record("alice", "checkout.checked-in", m.emergency,
                     {"credential": "payments-api", "held_for": 1500, "by": "alice"})
            w.vault.rotate(w.s("alice"), pay.id, None, reason="emergency")
            w.vault.burn_kit(w.s("dave"), "used")
            m.kits.append(w.vault.issue_kit([w.s("dave"), w.s("bob")]).id)
            w.clock.advance(HOUR)
            m.review("dave", m.emergency, "emergency", note="payments outage, confirmed",
                     holder="alice")
        if day == 14:  # onboarding: one done right, one shown twice and left to expire
            t = w.clock.now()
            m.onboarding = ("ob0001", "ob0002")
            m.record("bob", "onboarding.issued", "ob0001", {
                "identity": "svc-ingest", "reason": "new ingest pipeline",
                "channel": "in person, sealed envelope", "expires": t + DAY,
                "approver": "carol"})
            m.record("carol", "onboarding.approved", "ob0001", {})
            m.record("bob", "onboarding.revealed", "ob0001", {})
            w.clock.advance(2 * HOUR)
            m.record("bob", "onboarding.activated", "ob0001", {})
            m.record("bob", "onboarding.revoked", "ob0001", {"how": "forced reset"})
            m.review("dave", "ob0001", "onboarding", holder="bob")
            m.record("dave", "onboarding.issued", "ob0002", {
                "identity": "contractor-7", "reason": "temporary vendor access",
                "channel": "phone", "expires": w.clock.now() + DAY, "approver": "bob"})
            m.record("dave", "onboarding.revealed", "ob0002", {})
            m.record("dave", "onboarding.revealed", "ob0002", {})
            w.clock.advance(DAY + HOUR)
            m.record("dave", "onboarding.expired", "ob0002", {})
        if day == 19:  # a lease that ran out: the sweep notes it and rotates
            m.lease_expired = _checkout(m, "batch-provision", "carol", "dave", 901,
                                        hold=0, duration=1800, checkin=False)
            w.clock.advance(3 * HOUR)
            w.vault.sweep(w.s("dave"))  # clock rules: the first only records the gap
            w.vault.sweep(w.s("dave"))
        if day == 22:  # a manual target: another operator applies the new value
            w.vault.add_credential(w.s("bob"), CredentialSpec(
                "hsm-console", connector="manual", secret=SecretValue("CANARY-hsm-3c3c3c"),
                target="rack 4 HSM"))
            m.secrets.add("CANARY-hsm-3c3c3c")
            m.manual_req = _checkout(m, "hsm-console", "alice", "bob", 904, hold=600)
            assert w.vault.credential("hsm-console").status == "apply-pending"
            w.clock.advance(HOUR)
            m.secrets.add(w.vault.reveal_apply(w.s("carol"), "hsm-console").reveal())
            w.vault.confirm_applied(w.s("carol"), "hsm-console")
        if day == 25:  # edge-router: the target is down for good
            (edge_site / "mode").write_text("down")
            m.stuck_req = _checkout(m, "edge-router", "bob", "dave", 902, hold=900)
    # Reviews: all finished checkouts but a few; one with a concern.
    finished = [r for r in m.checkouts if r not in (m.stuck_req,)]
    unreviewed = {finished[3], finished[17], m.lease_expired, m.stuck_req}
    m.concern = finished[8]
    w.clock.advance(HOUR)
    for req_id in finished:
        if req_id in unreviewed:
            continue
        info = m.checkouts[req_id]
        # Independent of the holder and of the approver (core/reviews.py).
        reviewer = next(n for n in ("dave", "carol", "bob")
                        if n not in (info["requester"], info["approver"]))
        if req_id == m.concern:
            m.review(reviewer, req_id, "checkout", "concern",
                     "held longer than the ticket justified", info["requester"])
        else:
            m.review(reviewer, req_id, "checkout", holder=info["requester"])
    m.unreviewed = unreviewed
    # Still held at the end of the month (dashed in the timeline).
    w.clock.advance(HOUR)
    m.still_held = _checkout(m, "db-root", "alice", "carol", 903, hold=600, checkin=False)
    w.vault.suspend_operator([w.s("bob"), w.s("alice")], "dave", "leaves at month end")
    w.clock.advance(HOUR)
    m.until = w.clock.now()
    for name in ("db-root", "batch-provision", "payments-api", "app-admin"):
        current = decrypt_version(w, name)
        if current:
            m.secrets.add(current)
    return m


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    saved = {k: os.environ.get(k) for k in ("GLASSKEY_STATE_DIR",
                                            "GLASSKEY_INSECURE_FAST_KDF")}
    try:
        with pytest.MonkeyPatch.context() as mp:
            # ~400 transactions: durability is tested elsewhere, and fsync on a
            # busy disk would make this fixture the slowest thing in the suite.
            mp.setattr(os, "fsync", lambda fd: None)
            m = _script_month(tmp_path_factory.mktemp("month"))
        yield m
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def report(month: Month) -> rp.CustodyReport:
    return rp.build_custody_report(month.w.vault, month.since, month.until)


@pytest.fixture(scope="module")
def rendered(report: rp.CustodyReport) -> dict[str, str]:
    return {"md": rp.render_markdown(report), "html": rp.render_html(report),
            "json": rp.render_json(report)}


# ==== content =====================================================================================
def test_every_checkout_is_in_the_report(month: Month, report: rp.CustodyReport,
                                         rendered: dict[str, str]) -> None:
    by_id = {c.id: c for c in report.checkouts}
    assert len(month.checkouts) >= 40
    for req_id, info in month.checkouts.items():
        rec = by_id[req_id]
        assert rec.credential == info["cred"]
        assert rec.requester == info["requester"]
        assert rec.approvers == [info["approver"]]
        assert (rec.reason, rec.ticket) == (info["reason"], info["ticket"])
        assert rec.requested_at is not None and rec.held_from is not None
        for text in rendered.values():
            assert req_id in text
        for fmt in ("md", "html"):
            text = rendered[fmt]
            assert info["reason"] in text and info["ticket"] in text
    returned = [c for c in report.checkouts if c.outcome == "returned" and not c.emergency]
    assert all(c.held_to is not None and c.held_seconds is not None for c in returned)
    assert all(c.rotation.outcome == "committed" for c in returned
               if c.id not in (month.stuck_req,))
    first = by_id[next(iter(month.checkouts))]
    assert first.held_to is not None and first.held_from is not None
    assert first.held_seconds == int(first.held_to - first.held_from)


def test_denial_expiry_refusal_lease_and_open_checkout(month: Month,
                                                       report: rp.CustodyReport,
                                                       rendered: dict[str, str]) -> None:
    by_id = {c.id: c for c in report.checkouts}
    denied = by_id[month.denied]
    assert (denied.outcome, denied.denied_by) == ("denied", "carol")
    assert denied.deny_reason == "no incident behind this request"
    assert denied.rotation.outcome == "not-needed" and denied.review_status == "not-required"
    assert "no incident behind this request" in rendered["md"]
    assert by_id[month.expired].outcome == "expired"
    assert [r.why for r in by_id[month.refused].refusals] == ["self-approval"]
    assert any(f.kind == "refusal" and f.subject == month.refused for f in report.findings)
    lease = by_id[month.lease_expired]
    assert lease.outcome == "lease-expired" and lease.ended_by == "lease expiry"
    assert lease.rotation.outcome == "committed"
    held = by_id[month.still_held]
    assert held.outcome == "held" and held.held_to is None
    assert held.rotation.outcome == "not-rotated"
    assert report.summary.denied == 1 and report.summary.expired == 1
    assert report.summary.open == 1


def test_failed_rotation_is_reported_with_its_retry(month: Month, report: rp.CustodyReport,
                                                    rendered: dict[str, str]) -> None:
    by_id = {c.id: c for c in report.checkouts}
    retried = by_id[month.failed_req].rotation
    assert retried.outcome == "committed" and retried.failures == 1
    assert "after 1 failed attempt" in retried.text()
    manual = by_id[month.manual_req].rotation
    assert (manual.outcome, manual.applied_by, manual.separate) == ("committed", "carol", False)
    assert manual.text() == f"committed v{manual.version} (applied by carol)"
    stuck = by_id[month.stuck_req].rotation
    assert stuck.outcome == "failed" and stuck.error
    fails = {f.credential: f for f in report.rotation_failures}
    assert fails["app-admin"].resolved_at is not None
    assert fails["edge-router"].resolved_at is None
    assert fails["app-admin"].request == month.failed_req
    creds = {c.name: c for c in report.credentials}
    assert creds["edge-router"].status == "rotation-failed"
    assert creds["app-admin"].failures_in_period == 1
    kinds = {(f.kind, f.subject) for f in report.findings}
    assert ("rotation-failed", "edge-router") in kinds
    assert ("not-rotated", month.stuck_req) in kinds
    assert ("credential-status", "edge-router") in kinds
    assert "UNRESOLVED" in rendered["md"]
    assert rp._md(fails["edge-router"].error) in rendered["md"]
    # Both failures wait for a review (none was recorded).
    assert {u.subject for u in report.unreviewed if u.kind == "rotation"} == {
        "app-admin", "edge-router"}


def test_exceptions_emergency_and_onboarding(month: Month, report: rp.CustodyReport,
                                             rendered: dict[str, str]) -> None:
    (use,) = report.emergency_uses
    assert (use.id, use.credential, use.kit, use.by) == (
        month.emergency, "payments-api", month.kits[0], "alice")
    assert use.reviewers == ["dave"] and use.review_status == "overdue"
    assert use.rotation.startswith("committed")
    co = {c.id: c for c in report.checkouts}[month.emergency]
    assert co.emergency and co.rotation.outcome == "committed" and co.rotation.separate
    kits = {k.id: k for k in report.emergency_kits}
    first, second = month.kits
    assert kits[first].uses == [month.emergency] and kits[first].burned_at is not None
    assert kits[second].uses == []
    assert any(u.kind == "emergency" and u.id == month.emergency and u.reviews == 1
               and u.needed == 2 for u in report.unreviewed)
    assert any(f.kind == "emergency-use" for f in report.findings)
    ob = {o.id: o for o in report.onboarding}
    good, bad = ob["ob0001"], ob["ob0002"]
    assert (good.identity, good.approver, good.status, good.revoked_how) == (
        "svc-ingest", "carol", "revoked", "forced reset")
    assert good.review_status == "ok" and len(good.reveals) == 1
    assert bad.status == "expired" and len(bad.reveals) == 2
    kinds = {(f.kind, f.subject) for f in report.findings}
    assert {("onboarding-reuse", "ob0002"), ("onboarding-not-revoked", "ob0002"),
            ("onboarding-expired", "ob0002")} <= kinds
    assert ("onboarding-not-revoked", "ob0001") not in kinds
    assert any(u.kind == "onboarding" and u.id == "ob0002" for u in report.unreviewed)
    for text in (rendered["md"], rendered["html"]):
        assert "svc-ingest" in text and "contractor-7" in text and month.kits[0] in text
        assert "INC-EMERG-1" in text


def test_reviews_and_unreviewed_items(month: Month, report: rp.CustodyReport) -> None:
    by_id = {c.id: c for c in report.checkouts}
    pending = {u.id for u in report.unreviewed if u.kind == "checkout"}
    assert pending == month.unreviewed | {month.refused}
    assert by_id[month.concern].review_status == "concern"
    assert by_id[month.concern].reviews[0].note == "held longer than the ticket justified"
    reviewed = [c for c in report.checkouts if c.review_status == "ok"]
    assert len(reviewed) >= 30
    assert all(r.reviewer != c.requester for c in report.checkouts for r in c.reviews)
    assert not any(f.kind == "self-review" for f in report.findings)
    # Early unreviewed items are older than 7 days: overdue.
    assert any(u.overdue for u in report.unreviewed)
    assert report.summary.overdue_reviews == sum(1 for u in report.unreviewed if u.overdue)


def test_segregation_of_duties_flags_the_dominant_pair(report: rp.CustodyReport) -> None:
    pairs = {(p.approver, p.requester): p for p in report.pairs}
    dominant = pairs[("bob", "alice")]
    assert "dominant" in dominant.flags and dominant.count >= 3
    assert dominant.share > 0.5 and dominant.requester_total == sum(
        p.count for p in report.pairs if p.requester == "alice")
    assert "dominant" not in pairs[("carol", "alice")].flags
    flagged = {(p.approver, p.requester) for p in report.pairs if p.flagged}
    assert ("bob", "alice") in flagged
    assert report.pairs[0].flagged  # flagged pairs come first
    assert any(f.kind == "segregation-of-duties" and f.subject == "bob -> alice"
               for f in report.findings)


def test_sod_rules_on_synthetic_counts() -> None:
    col = rp._Collector()

    def approvals(requester: str, approver: str, k: int, start: int) -> None:
        for i in range(k):
            rec = rp.CheckoutRecord(f"r{requester}{approver}{i}", "c", requester)
            rec.approvals.append(rp.ApprovalRecord(approver, float(start + i)))
            col.checkouts[rec.id] = rec

    approvals("erin", "frank", 3, 0)      # 3 of 6 = 50%: not more than half
    approvals("erin", "gina", 3, 10)
    approvals("hal", "ivan", 3, 20)       # 3 of 4 = 75%: dominant
    approvals("hal", "gina", 1, 30)
    approvals("ivan", "hal", 2, 40)       # reciprocal with ivan -> hal (2 and 3)
    pairs = {(p.approver, p.requester): p for p in rp._pairs(col, 0.0, 100.0)}
    assert pairs[("frank", "erin")].flags == []
    assert pairs[("ivan", "hal")].flags == ["dominant", "reciprocal"]
    assert pairs[("hal", "ivan")].flags == ["reciprocal"]  # 2 of 2: too few to dominate
    assert pairs[("gina", "hal")].flags == []
    # Outside the window nothing counts.
    assert rp._pairs(col, 1000.0, 2000.0) == []


def test_emergency_use_without_a_reveal_entry_still_opens_custody() -> None:
    col = rp._Collector()

    def add(seq: int, actor: str, event: str, subject: str, **details: Any) -> None:
        col.add({"seq": seq, "time": iso(1_800_000_000 + seq * 60), "actor": actor,
                 "event": event, "subject": subject, "details": details, "sig": "c2ln"})

    add(1, "erin", "checkout.requested", "r1", credential="c", reason="r", ticket="t",
        duration=600, version=3)
    add(2, "erin", "emergency.used", "r1", credential="c", kit="k9")
    add(3, "erin", "checkout.checked-in", "r1", credential="c", held_for=60, by="erin")
    add(4, "erin", "rotate.intent", "c", from_version=3, to_version=4, connector="x",
        reason="checkin", request="r1")
    add(5, "erin", "rotate.commit", "c", version=4, connector="x")
    rec = col.checkouts["r1"]
    assert rec.emergency and rec.kit == "k9" and rec.outcome == "returned"
    assert rec.held_from == 1_800_000_120 and rec.held_to == 1_800_000_180
    rot = rp._rotation_for(rec, col)
    assert (rot.outcome, rot.version, rot.separate) == ("committed", 4, False)
    assert col.kits["k9"].uses == ["r1"]


def test_auth_failures_lockouts_and_operator_changes(report: rp.CustodyReport) -> None:
    (alice,) = [a for a in report.auth if a.operator == "alice"]
    assert alice.failures == 5 and alice.lockouts == 1 and alice.locked_attempts == 1
    assert sum(1 for e in report.auth_events if e.operator == "alice") == 6
    assert any(f.kind == "lockout" and f.subject == "alice" for f in report.findings)
    changes = [(o.event, o.operator, o.by) for o in report.operator_changes]
    assert ("suspended", "dave", "bob") in changes
    assert sum(1 for e, _, _ in changes if e == "enrolled") == 4
    assert all("sign_pub" not in o.details for o in report.operator_changes)


def test_credentials_by_rotation_age_and_status(month: Month,
                                                report: rp.CustodyReport) -> None:
    creds = {c.name: c for c in report.credentials}
    assert set(creds) == {"db-root", "batch-provision", "payments-api", "app-admin",
                          "edge-router", "hsm-console"}
    assert creds["db-root"].held_by == "alice"
    assert creds["edge-router"].age_days > 20 and creds["edge-router"].age_bucket == "7-30 d"
    assert creds["db-root"].checkouts_in_period >= 10
    assert report.credential_matrix["active"]["< 7 d"] >= 3
    assert report.credential_matrix["rotation-failed"]["7-30 d"] == 1
    assert [c.age_days for c in report.credentials] == sorted(
        (c.age_days for c in report.credentials), reverse=True)


def test_audit_chain_and_controls_mapping(report: rp.CustodyReport,
                                          rendered: dict[str, str]) -> None:
    assert report.audit.ok and report.audit.entries == report.audit.entries_read
    assert report.audit.head_seq == report.audit.entries and len(report.audit.head_hash) == 64
    assert "VERIFIED" in rendered["md"]
    rows = {r.control: r for r in report.controls}
    names = [(r.control, r.name) for r in report.controls
             if r.framework.startswith("OWASP")]
    assert names == list(rp.NHI_TOP10)
    for nhi in ("NHI3:2025", "NHI5:2025", "NHI6:2025", "NHI8:2025"):
        assert rows[nhi].status == "not addressed"
    for nhi in ("NHI7:2025", "NHI10:2025"):
        assert rows[nhi].status == "addressed"
    assert [r.control for r in report.controls if r.control.startswith("PR.AA")] == [
        f"PR.AA-0{i}" for i in range(1, 7)]
    assert any("§5.2.2" in r.control for r in report.controls)
    assert any("§5.2.8" in r.control for r in report.controls)
    assert "Human Use of NHI" in rendered["md"] and "Human Use of NHI" in rendered["html"]


def test_no_secret_value_anywhere(month: Month, rendered: dict[str, str]) -> None:
    assert len(month.secrets) >= 40
    log = (month.w.root / "audit.jsonl").read_text()
    for secret in month.secrets:
        assert secret not in log
        raw = secret.encode()
        forms = {secret, raw.hex(), base64.b64encode(raw).decode(),
                 json.dumps(secret)[1:-1], html.escape(secret)}
        for fmt, text in rendered.items():
            for form in forms:
                assert form not in text, f"a secret value leaked into the {fmt} report"
    for text in rendered.values():
        assert "CANARY" not in text


def test_json_is_stable_and_uses_rfc3339(report: rp.CustodyReport,
                                         rendered: dict[str, str]) -> None:
    doc = json.loads(rendered["json"])
    assert doc["format"] == "glasskey-custody-report" and doc["version"] == 1
    assert rendered["json"] == rp.render_json(report)
    assert list(doc) == sorted(doc)
    stamp = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    assert stamp.match(doc["since"]) and stamp.match(doc["until"])
    co = doc["checkouts"][0]
    assert stamp.match(co["requested_at"]) and stamp.match(co["held_from"])
    assert {"approvers", "rotation", "review_status", "reviews"} <= set(co)
    assert all("flagged" in p for p in doc["pairs"])


def test_period_selects_items(month: Month) -> None:
    first_week = rp.build_custody_report(month.w.vault, month.since, month.since + 7 * DAY)
    ids = {c.id for c in first_week.checkouts}
    assert month.denied in ids and month.expired in ids
    assert month.stuck_req not in ids and month.emergency not in ids
    assert not first_week.emergency_uses and not first_week.onboarding
    assert all(c.requested_at is not None and c.requested_at <= month.since + 7 * DAY
               for c in first_week.checkouts)
    # a checkout held across the boundary belongs to both periods
    (held,) = [c for c in rp.build_custody_report(
        month.w.vault, month.until - 60, month.until).checkouts]
    assert held.id == month.still_held
    with pytest.raises(UsageError):
        rp.build_custody_report(month.w.vault, month.until, month.since)


# ==== HTML =======================================================================================
def test_html_is_self_contained_and_well_formed(month: Month, report: rp.CustodyReport,
                                                rendered: dict[str, str]) -> None:
    page = rendered["html"]
    root = ET.fromstring(page)  # the page is also well-formed XML
    assert root.tag == "html"
    assert not root.findall(".//script") and "<script" not in page.lower()
    for el in root.iter():
        for attr in ("src", "href"):
            assert attr not in el.attrib, f"{el.tag} fetches {el.attrib[attr]}"
    assert "default-src 'none'" in page
    assert re.findall(r"https?://[^\s\"'<]*", page) == ["http://www.w3.org/2000/svg"] * len(
        re.findall(r"<svg ", page))
    svg = "{http://www.w3.org/2000/svg}"
    figures = root.findall(".//figure")
    creds = {f.attrib["data-credential"] for f in figures}
    assert creds == {"db-root", "batch-provision", "payments-api", "app-admin",
                     "edge-router", "hsm-console"}
    for fig in figures:
        (pic,) = fig.findall(f"{svg}svg")
        width = float(pic.attrib["width"])
        cred = fig.attrib["data-credential"]
        bars = [r for r in pic.iter(f"{svg}rect")
                if r.find(f"{svg}title") is not None
                and " held " in (r.find(f"{svg}title").text or "")]  # type: ignore[union-attr]
        expected = [c for c in report.checkouts if c.credential == cred and c.revealed]
        assert len(bars) == len(expected)
        for bar, co in zip(sorted(bars, key=lambda b: float(b.attrib["x"])),
                           sorted(expected, key=lambda c: c.held_from or 0.0)):
            title = bar.find(f"{svg}title").text or ""  # type: ignore[union-attr]
            assert title.startswith(co.id) and co.requester in title
            x, w = float(bar.attrib["x"]), float(bar.attrib["width"])
            assert x >= 0 and x + w <= width and w >= 3
            frac = (co.held_from - report.since) / (report.until - report.since)  # type: ignore[operator]
            assert abs((x - 8) / (width - 16) - frac) < 0.01
        if cred == "db-root":  # the checkout still open is drawn dashed to the period's end
            open_bar = [b for b in bars if month.still_held in (b.find(f"{svg}title").text or "")]  # type: ignore[union-attr]
            assert open_bar[0].attrib.get("stroke-dasharray")
        if cred == "payments-api":
            assert any(b.attrib.get("stroke") == rp.EMERGENCY_COLOUR for b in bars)
        if cred == "edge-router":
            assert pic.findall(f"{svg}path"), "failed rotation marker missing"
    status = root.find(".//*[@id='audit-status']")
    assert status is not None and status.attrib["class"] == "ok"


def test_html_escapes_what_people_typed(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    w.add("esc-cred")
    evil = '<script>alert(1)</script> & "quotes" | pipes ]'
    req = w.vault.request(w.s("alice"), "esc-cred", evil, "T<1>", 600)
    w.vault.approve(w.s("bob"), req.id)
    w.vault.reveal(w.s("alice"), req.id)
    w.clock.advance(60)
    w.vault.checkin(w.s("alice"), req.id)
    rep = rp.build_custody_report(w.vault, w.clock.now() - DAY, w.clock.now())
    page = rp.render_html(rep)
    ET.fromstring(page)
    assert "<script>" not in page and "&lt;script&gt;" in page
    md = rp.render_markdown(rep)
    assert "<script>" not in md and "\\| pipes" in md
    row = next(line for line in md.splitlines() if req.id in line)
    assert row.count(" | ") == 13  # the pipe in the reason did not add a column


def test_html_renders_in_headless_chromium(rendered: dict[str, str], tmp_path: Path) -> None:
    # `make test` installs chromium (make sysdeps), so a missing browser is a failure, not
    # a skip: a check that silently never runs proves nothing.
    assert shutil.which("chromium"), "chromium is missing: run 'make sysdeps' (as root or sudo)"
    page = tmp_path / "report.html"
    page.write_text(rendered["html"])
    png = tmp_path / "report.png"
    profile = tmp_path / "profile"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={png}",
         "--window-size=1200,2400", page.as_uri()],
        check=True, capture_output=True, timeout=60)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    if os.environ.get("GLASSKEY_KEEP_REPORT_PNG"):
        shutil.copy(png, os.environ["GLASSKEY_KEEP_REPORT_PNG"])


# ==== attestation ===================================================================================
def test_attestation_signs_the_rendered_report(month: Month, report: rp.CustodyReport,
                                               rendered: dict[str, str]) -> None:
    w = month.w
    with pytest.raises(PolicyError):
        rp.attest(w.vault, w.s("alice"), rendered["md"], "md", month.since, month.until)
    with pytest.raises(UsageError):
        rp.attest(w.vault, w.s("carol"), rendered["md"], "pdf", month.since, month.until)
    att = rp.attest(w.vault, w.s("carol"), rendered["md"], "md", month.since, month.until,
                    head_seq=report.audit.head_seq, head_hash=report.audit.head_hash)
    entry = list(file_store(w.vault).audit.entries())[-1]
    assert (entry["event"], entry["subject"], entry["actor"]) == ("report.attested", att,
                                                                  "carol")
    # The attestation binds exactly the head the report names (seq and hash).
    assert entry["details"] == {
        "since": iso(month.since), "until": iso(month.until), "format": "md",
        "sha256": rp.report_sha256(rendered["md"]), "entries": report.audit.head_seq,
        "head_seq": report.audit.head_seq, "head_hash": report.audit.head_hash}
    assert f"head seq {report.audit.head_seq} hash {report.audit.head_hash}" in rendered["md"]
    assert rp.verify_report(w.vault, rendered["md"]).attestation.id == att
    assert entry["sig"]
    assert w.vault.verify_audit().ok
    (found,) = rp.find_attestations(w.vault, rendered["md"])
    assert found.id == att and found.by == "carol"
    assert rp.find_attestations(w.vault, rendered["md"] + " ") == []
    later = rp.build_custody_report(w.vault, month.since, month.until)
    assert [a.id for a in later.attestations] == [att]
    assert att in rp.render_markdown(later)


def test_a_broken_chain_is_the_first_finding(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    w.add("x")
    w.checkout("x")
    log = w.root / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    # Same length (the witness checkpoint of the last line still matches): only
    # the chain and the signatures can tell.
    i = next(i for i, line in enumerate(lines) if b'"reason":"outage"' in line)
    lines[i] = lines[i].replace(b'"reason":"outage"', b'"reason":"outagE"', 1)
    log.write_bytes(b"".join(lines))
    rep = rp.build_custody_report(w.vault, w.clock.now() - DAY, w.clock.now())
    assert not rep.audit.ok and rep.audit.first_bad == i + 1
    assert rep.findings[0].kind == "audit-chain" and rep.findings[0].severity == "high"
    assert f"BROKEN at entry {i + 1}" in rp.render_markdown(rep)
    page = rp.render_html(rep)
    status = ET.fromstring(page).find(".//*[@id='audit-status']")
    assert status is not None and status.attrib["class"] == "bad"


def test_a_rolled_back_log_still_gives_a_report(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    w.add("x")
    w.checkout("x")
    log = w.root / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))  # the last entry is gone
    with pytest.raises(IntegrityError):
        w.vault.credentials()
    rep = rp.build_custody_report(w.vault, w.clock.now() - DAY, w.clock.now())
    assert not rep.audit.ok and rep.audit.first_bad == len(lines)
    assert rep.audit.state_error
    assert [(c.name, c.status, c.in_vault) for c in rep.credentials] == [("x", "unknown", False)]
    assert {f.kind for f in rep.findings[:2]} == {"audit-chain", "vault-state"}
    assert rep.vault_id == w.vault.store.unverified_meta()["vault_id"]
    ET.fromstring(rp.render_html(rep))


def test_parse_date() -> None:
    assert iso(rp.parse_date("2027-01-15")) == "2027-01-15T00:00:00Z"
    assert iso(rp.parse_date("2027-01-15", end=True)) == "2027-01-15T23:59:59Z"
    assert iso(rp.parse_date("2027-01-15T08:30:00Z")) == "2027-01-15T08:30:00Z"
    for bad in ("yesterday", "2027-01-15T08:30:00", ""):
        with pytest.raises(UsageError):
            rp.parse_date(bad)


# ==== streaming ======================================================================================
@pytest.mark.parametrize("days", [(0, 40), (9, 10), (10, 11), (12, 13), (5, 12), (19, 20),
                                  (27, 29), (14, 16)])
def test_streaming_gives_the_report_a_full_parse_gives(month: Month, days: tuple[int, int],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The feeder parses little before the period; the report must not change."""
    since = month.since + days[0] * DAY
    until = min(month.since + days[1] * DAY, month.until)
    streamed = rp.build_custody_report(month.w.vault, since, until)
    original = rp._read_log

    def parse_everything(vault: Any, col: Any, _s: float, _u: float, limit: Any) -> Any:
        return original(vault, col, 0.0, 4e9, limit)

    monkeypatch.setattr("glasskey.core.report.build._read_log", parse_everything)
    full = rp.build_custody_report(month.w.vault, since, until)
    assert streamed.checkouts or streamed.auth_events or days == (27, 29)
    assert rp.render_json(streamed) == rp.render_json(full)
    assert rp.render_markdown(streamed) == rp.render_markdown(full)
