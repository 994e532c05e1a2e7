"""The custody report comes from the verified log and misses nothing (issues 10, 11, 15).

Each test drives a real vault through the real services, then checks the
report for what the attack passes found missing or mis-stated: refused kit
uses and failed notifications, a state edited to hide a failed rotation,
approvals that released a value without a reveal, unsigned system entries
presented as someone's act, reviews by an approver, emergency uses without
their reason, and a lease expiry that read as a check-in.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from checkout_world import World, make_world
from glasskey.core import report as rp
from glasskey.core.credentials import CredentialSpec
from glasskey.core.emergency import encode_part
from glasskey.core.errors import AuthError, GlasskeyError, PolicyError
from glasskey.core.secret import SecretValue
from helpers import file_store

DAY = 86400.0

FAILING = """#!/usr/bin/env python3
import sys
sys.exit(3)
"""

#: Both parts of a kit that was never issued.
WRONG_KIT = encode_part(1, bytes(range(32))) + " " + encode_part(2, bytes(32))


def _report(w: World, since: float | None = None) -> rp.CustodyReport:
    return rp.build_custody_report(w.vault, w.clock.now() - DAY if since is None else since,
                                   w.clock.now())


def _kinds(r: rp.CustodyReport) -> dict[tuple[str, str], rp.Finding]:
    return {(f.kind, f.subject): f for f in r.findings}


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path, ("alice", "bob", "carol", "dave"))
    world.add("db-root", "CANARY-report-log-1")
    return world


def test_refused_kit_uses_and_failed_notifications_are_in_the_report(w: World) -> None:
    wrong = WRONG_KIT
    for _ in range(2):
        with pytest.raises(GlasskeyError):
            w.vault.emergency_reveal(w.s("alice"), "db-root", wrong, "outage", "INC-9", 600)
    with w.vault.store.transaction() as txn:  # what notify() records when the hook fails
        txn.record(w.s("alice").signer, "emergency.notify-failed", "e-123",
                   {"why": "TimeoutExpired"})
    r = _report(w)
    assert len(r.kit_refusals) == 2 and r.summary.kit_refusals == 2
    assert r.summary.refusals >= 2
    assert {(k.by, k.credential) for k in r.kit_refusals} == {("alice", "db-root")}
    found = [f for f in r.findings if f.kind == "kit-refused"]
    assert len(found) == 2 and all(f.severity == "high" for f in found)
    nf = _kinds(r)[("notify-failed", "e-123")]
    assert "TimeoutExpired" in nf.text
    md = rp.render_markdown(r)
    assert "## Refused emergency-kit uses" in md and "## Failed notifications" in md
    assert "| Refused emergency-kit uses | 2 |" in md


def _failing_credential(w: World, tmp: Path) -> None:
    script = tmp / "set-password"
    script.write_text(FAILING)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        "edge", connector="command", secret=SecretValue("CANARY-edge-1"), target=str(script)))


def _state_edit(w: World, name: str, status: str) -> None:
    """A state-only edit: no audit entry (what an operator with file access can do)."""
    cred_id = w.vault.credential(name).id
    with w.vault.store.transaction() as txn:
        doc = txn.table("credentials").get(cred_id)
        assert doc is not None
        doc["status"] = status
        doc.pop("failure", None)
        txn.table("credentials").put(cred_id, doc)


def test_a_state_edit_does_not_hide_a_failed_rotation(w: World, tmp_path: Path) -> None:
    _failing_credential(w, tmp_path)
    req = w.checkout("edge")
    w.vault.reveal(w.s("alice"), req)
    w.clock.advance(60)
    w.vault.checkin(w.s("alice"), req)
    assert w.vault.credential("edge").status == "rotation-failed"
    _state_edit(w, "edge", "active")
    assert w.vault.credential("edge").status == "active"
    assert w.vault.verify_audit().ok
    r = _report(w)
    kinds = _kinds(r)
    assert kinds[("rotation-failed", "edge")].severity == "high"
    assert kinds[("credential-status", "edge")].severity == "high"
    disagree = kinds[("state-log-disagree", "edge")]
    assert disagree.severity == "high" and "active" in disagree.text \
        and "rotation-failed" in disagree.text
    cred = {c.name: c for c in r.credentials}["edge"]
    assert (cred.status, cred.log_status) == ("active", "rotation-failed")
    # A later period, after the failure: the log still says ROTATION-FAILED.
    w.clock.advance(3 * DAY)
    later = _report(w, since=w.clock.now() - DAY)
    assert ("credential-status", "edge") in _kinds(later)
    assert ("state-log-disagree", "edge") in _kinds(later)


def test_kit_state_disagreeing_with_the_log_is_a_finding(w: World) -> None:
    w.vault.issue_kit([w.s("bob"), w.s("dave")])
    assert not [f for f in _report(w).findings if f.kind == "state-log-disagree"]
    kit = w.vault.active_kit()
    assert kit is not None
    with w.vault.store.transaction() as txn:  # state-only: "burn" the kit silently
        doc = txn.table("kits").get(kit["id"])
        assert doc is not None
        doc["status"] = "burned"
        txn.table("kits").put(kit["id"], doc)
    # The kit record now disagrees with the signed roster: every client names it as
    # tampering, and the report says the state could not be read, and why.
    f = _kinds(_report(w))[("vault-state", "vault.json")]
    assert kit["id"] in f.text and "differs from the signed roster" in f.text


def test_an_approval_is_a_release_even_without_a_reveal(w: World) -> None:
    req = w.checkout("db-root")  # alice requests, bob approves: the grant exists
    w.clock.advance(60)
    w.vault.cancel(w.s("alice"), req)
    r = _report(w)
    (c,) = [c for c in r.checkouts if c.id == req]
    assert c.released and c.released_not_revealed and c.released_at is not None
    assert r.summary.released == 1 and r.summary.released_not_revealed == 1
    assert r.summary.revealed == 0
    md = rp.render_markdown(r)
    section = md.split("## Released but not revealed", 1)[1].split("\n## ", 1)[0]
    assert req in section and rp._md("cancelled (released, not revealed)") in section
    if c.rotation.outcome != "committed":
        assert _kinds(r)[("released-not-rotated", req)].severity == "high"
    # A request never fully approved released nothing.
    other = w.vault.request(w.s("carol"), "db-root", "x", "T-2", 600)
    w.vault.cancel(w.s("carol"), other.id)
    r2 = _report(w)
    (o,) = [c for c in r2.checkouts if c.id == other.id]
    assert not o.released and r2.summary.released == 1


def test_unsigned_system_entries_are_never_someones_act(w: World) -> None:
    for _ in range(6):
        with pytest.raises(AuthError):
            w.vault.unlock("bob", "not the passphrase", w.code("bob"))
    r = _report(w)
    bob = [a for a in r.auth_events if a.operator == "bob"]
    assert bob and not any(a.signed for a in bob)
    assert r.summary.unsigned_entries == len(r.unsigned) >= len(bob)
    assert all(u.event.startswith("auth.") for u in r.unsigned)
    lockout = _kinds(r)[("lockout", "bob")]
    assert rp.UNSIGNED in lockout.text and "bob was locked out" not in lockout.text
    md = rp.render_markdown(r)
    html = rp.render_html(r)
    for text in (md, html):
        assert "## Unsigned system entries" in text or "Unsigned system entries" in text
        assert rp.UNSIGNED in text
    for title in ("## Failed authentications and lockouts", "## Authentication events"):
        section = md.split(title, 1)[1].split("\n## ", 1)[0]
        rows = [line for line in section.splitlines() if "| bob |" in line]
        assert rows and all(rp.UNSIGNED in line for line in rows)


def _finished_checkout(w: World, requester: str = "alice", approver: str = "bob",
                       cred: str = "db-root") -> str:
    req = w.checkout(cred, requester=requester, approvers=(approver,))
    w.vault.reveal(w.s(requester), req)
    w.clock.advance(120)
    w.vault.checkin(w.s(requester), req)
    return req


def test_an_approver_cannot_review_what_they_approved(w: World) -> None:
    req = _finished_checkout(w)
    with pytest.raises(PolicyError, match="independent"):
        w.vault.review(w.s("bob"), req, "ok", "looked fine")
    refused = [e for e in file_store(w.vault).audit.entries() if e["event"] == "review.refused"]
    assert refused and refused[-1]["subject"] == req and refused[-1]["actor"] == "bob"
    assert refused[-1]["details"] == {"why": "approved-it"}
    w.vault.review(w.s("carol"), req, "ok", "matches INC-1")
    assert not [f for f in _report(w).findings if f.kind == "review-not-independent"]


def test_an_old_log_with_an_approver_review_is_flagged(w: World) -> None:
    req = _finished_checkout(w)
    with w.vault.store.transaction() as txn:  # what an older client let through
        txn.record(w.s("bob").signer, "review.recorded", req,
                   {"kind": "checkout", "outcome": "ok", "note": "", "holder": "alice"})
    f = _kinds(_report(w))[("review-not-independent", req)]
    assert f.severity == "high" and "bob" in f.text


def test_emergency_use_shows_reason_and_ticket(w: World) -> None:
    w.vault.issue_kit([w.s("bob"), w.s("dave")])
    code = " ".join(w.vault.kit_part(w.s(n)) for n in ("bob", "dave"))
    co, _secret = w.vault.emergency_reveal(w.s("alice"), "db-root", code,
                                           "approvers unreachable", "INC-EMERG-7", 600)
    r = _report(w)
    (use,) = r.emergency_uses
    assert (use.reason, use.ticket) == ("approvers unreachable", "INC-EMERG-7")
    (c,) = [c for c in r.checkouts if c.id == co.id]
    assert (c.reason, c.ticket) == ("approvers unreachable", "INC-EMERG-7")
    md = rp.render_markdown(r)
    section = md.split("## Emergency-kit uses", 1)[1].split("\n## ", 1)[0]
    assert "approvers unreachable" in section and "INC-EMERG-7" in section
    assert "INC-EMERG-7" in _kinds(r)[("emergency-use", co.id)].text


@pytest.mark.parametrize("sweeper", ["alice", "dave"])
def test_a_lease_expiry_reads_as_expiry_not_as_a_check_in(w: World, sweeper: str) -> None:
    req = w.checkout("db-root", duration=600)
    w.vault.reveal(w.s("alice"), req)
    w.clock.advance(900)
    w.vault.sweep(w.s(sweeper))  # a quiet vault: the first sweep notes its clock is ahead
    w.vault.sweep(w.s(sweeper))
    r = _report(w)
    (c,) = [c for c in r.checkouts if c.id == req]
    text = rp._outcome(c)
    assert text.startswith("lease expired, ")
    if c.rotation.outcome == "committed":
        assert text == "lease expired, rotated"
    row = next(line for line in rp.render_markdown(r).splitlines() if f"| {req} |" in line)
    assert "lease expired" in row and "returned by" not in row


def test_items_open_across_the_period_start_are_streamed_in_full(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w.add("app", "CANARY-report-log-2")
    w.add("hsm", "CANARY-report-log-3")
    held = w.checkout("db-root")                       # revealed before, returned during
    w.vault.reveal(w.s("alice"), held)
    approved = w.checkout("app", requester="carol", approvers=("dave",))  # released before
    w.clock.advance(60)
    closed = _finished_checkout(w, cred="hsm")          # wholly before: not in the report
    w.vault.review(w.s("carol"), closed, "ok", "fine")
    since = w.clock.now() + 1
    w.clock.advance(120)
    w.vault.checkin(w.s("alice"), held)
    w.vault.reveal(w.s("carol"), approved)
    w.clock.advance(60)
    w.vault.checkin(w.s("carol"), approved)
    w.vault.review(w.s("dave"), held, "ok", "checked")
    until = w.clock.now()
    w.clock.advance(600)
    w.vault.review(w.s("bob"), approved, "concern", "too long")  # a follow-up after the period
    streamed = rp.build_custody_report(w.vault, since, until)
    ids = {c.id for c in streamed.checkouts}
    assert ids == {held, approved}
    by_id = {c.id: c for c in streamed.checkouts}
    held_from, released_at = by_id[held].held_from, by_id[approved].released_at
    assert held_from is not None and held_from < since
    assert released_at is not None and released_at < since
    assert [r.reviewer for r in by_id[approved].reviews] == ["bob"]
    original = rp._read_log
    monkeypatch.setattr("glasskey.core.report.build._read_log", lambda vault, col, _s, _u, limit: original(
        vault, col, 0.0, 4e9, limit))
    full = rp.build_custody_report(w.vault, since, until)
    assert rp.render_json(streamed) == rp.render_json(full)


def test_a_release_closed_without_a_reveal_waits_for_review(w: World) -> None:
    req = w.checkout("db-root")
    w.clock.advance(60)
    w.vault.cancel(w.s("alice"), req)
    w.clock.advance(8 * DAY)
    r = _report(w, since=w.clock.now() - 9 * DAY)
    (item,) = [u for u in r.unreviewed if u.id == req]
    assert item.kind == "checkout" and item.finished_at is not None and item.overdue
