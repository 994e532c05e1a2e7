"""Dual control, single use and fail-closed release (catalogue rows A1, A2, L1)."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest
from checkout_world import World, make_world
from glasskey.core.errors import IntegrityError, PolicyError, StorageError, UsageError
from helpers import file_store


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path)
    world.add("db-root", "initial-value-1")
    return world


def events(w: World) -> list[tuple[str, str, dict[str, object]]]:
    return [(e["actor"], e["event"], e["details"]) for e in file_store(w.vault).audit.entries()]


def test_happy_path_reveals_once_then_rotates(w: World) -> None:
    req = w.checkout("db-root")
    assert w.vault.checkout(req).state == "approved"
    value = w.vault.reveal(w.s("alice"), req)
    assert value.reveal() == "initial-value-1"
    co = w.vault.checkout(req)
    assert co.state == "checked-out" and co.revealed_at is not None
    assert co.lease_expires == pytest.approx(co.revealed_at + 1800)  # lease starts at reveal
    result = w.vault.checkin(w.s("alice"), req)
    assert result.outcome == "committed" and result.version == 2
    assert w.vault.checkout(req).state == "closed"
    # the next checkout reveals the rotated value
    req2 = w.checkout("db-root")
    assert w.vault.reveal(w.s("alice"), req2).reveal() != "initial-value-1"
    assert w.vault.verify_audit().ok


def test_requester_cannot_approve_own_request_and_it_is_audited(w: World) -> None:
    req = w.vault.request(w.s("bob"), "db-root", "r", "t", 60)
    with pytest.raises(PolicyError, match="own request"):
        w.vault.approve(w.s("bob"), req.id)
    assert ("bob", "checkout.refused", {"why": "self-approval"}) in events(w)
    assert w.vault.checkout(req.id).state == "requested"


def test_same_approver_twice_counts_once(w: World) -> None:
    w.add("vault-k3", "three-person-value", k=3)
    req = w.vault.request(w.s("alice"), "vault-k3", "r", "t", 60)
    w.vault.approve(w.s("bob"), req.id)
    with pytest.raises(PolicyError, match="counts once"):
        w.vault.approve(w.s("bob"), req.id)
    co = w.vault.checkout(req.id)
    assert co.state == "requested" and len(co.approvals) == 1
    with pytest.raises(PolicyError, match="not approved"):
        w.vault.reveal(w.s("alice"), req.id)
    w.vault.approve(w.s("carol"), req.id)
    assert w.vault.reveal(w.s("alice"), req.id).reveal() == "three-person-value"


def test_second_reveal_refused_and_audited(w: World) -> None:
    req = w.checkout("db-root")
    w.vault.reveal(w.s("alice"), req)
    with pytest.raises(PolicyError, match="already revealed"):
        w.vault.reveal(w.s("alice"), req)
    assert ("alice", "checkout.refused", {"why": "second-reveal"}) in events(w)


def test_only_the_requester_reveals(w: World) -> None:
    req = w.checkout("db-root")
    with pytest.raises(PolicyError, match="only the requester"):
        w.vault.reveal(w.s("carol"), req)


def test_expired_approval_is_refused_and_closes_the_request(w: World) -> None:
    req = w.checkout("db-root")
    w.clock.advance(15 * 60 + 1)
    with pytest.raises(PolicyError, match="expired"):
        w.vault.reveal(w.s("alice"), req)
    co = w.vault.checkout(req)
    assert co.state == "closed" and co.closed_reason == "expired"
    assert not any(a.has_grant for a in co.approvals)


def test_request_needs_reason_ticket_and_duration_within_policy(w: World) -> None:
    with pytest.raises(UsageError, match="reason"):
        w.vault.request(w.s("alice"), "db-root", "", "INC", 60)
    with pytest.raises(UsageError, match="ticket"):
        w.vault.request(w.s("alice"), "db-root", "why", " ", 60)
    with pytest.raises(UsageError, match="exceeds"):
        w.vault.request(w.s("alice"), "db-root", "why", "INC", 5 * 3600)


def test_checkout_is_exclusive(w: World) -> None:
    req = w.checkout("db-root")
    with pytest.raises(PolicyError, match="one holder at a time"):
        w.vault.request(w.s("carol"), "db-root", "also", "INC-2", 60)
    w.vault.reveal(w.s("alice"), req)
    with pytest.raises(PolicyError, match="one holder at a time"):
        w.vault.request(w.s("carol"), "db-root", "also", "INC-2", 60)
    w.vault.checkin(w.s("alice"), req)
    assert w.vault.request(w.s("carol"), "db-root", "now", "INC-2", 60).state == "requested"


def test_roles_are_enforced(w: World) -> None:
    req = w.vault.request(w.s("carol"), "db-root", "r", "t", 60)
    with pytest.raises(PolicyError, match="approver role"):
        w.vault.approve(w.s("alice"), req.id)


def test_suspended_approver_invalidates_their_approval(w: World) -> None:
    req = w.checkout("db-root", approvers=("carol",))
    w.vault.suspend_operator([w.s("bob"), w.s("alice")], "carol", "left the team")
    with pytest.raises(PolicyError, match="no longer an active approver"):
        w.vault.reveal(w.s("alice"), req)


def test_deny_and_cancel_release_nothing(w: World) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "r", "t", 60)
    w.vault.deny(w.s("bob"), req.id, "not an outage")
    co = w.vault.checkout(req.id)
    assert co.state == "closed" and co.closed_reason == "denied" and co.denied_by == "bob"
    with pytest.raises(PolicyError):
        w.vault.reveal(w.s("alice"), req.id)
    req2 = w.checkout("db-root")
    w.vault.cancel(w.s("alice"), req2)
    with pytest.raises(PolicyError):
        w.vault.reveal(w.s("alice"), req2)


# -- A2: forged approvals ---------------------------------------------------------------------
def _tamper_request(w: World, req_id: str, **changes: object) -> None:
    """What an attacker with write access to the files can do: anything the store can."""
    with w.vault.store.transaction() as txn:
        doc = txn.table("requests").get(req_id)
        assert doc is not None
        doc.update(changes)
        txn.table("requests").put(req_id, doc)


def test_marking_a_request_approved_in_the_file_releases_nothing(w: World) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "r", "t", 60)
    bob = w.vault.operators()[[o.name for o in w.vault.operators()].index("bob")]
    _tamper_request(w, req.id, state="approved", approvals=[{
        "approver": "bob", "approver_id": bob.id, "at": w.clock.now(),
        "expires": w.clock.now() + 900, "grant": "AAAA"}])
    with pytest.raises(IntegrityError, match="forged"):
        w.vault.reveal(w.s("alice"), req.id)
    assert ("alice", "checkout.refused", {"why": "forged-grant"}) in events(w)


def test_a_grant_moved_to_another_request_does_not_open(w: World) -> None:
    w.add("other", "other-value")
    real = w.checkout("other")
    grant = w.vault.store  # read the real grant through the store
    with grant.read() as txn:
        approval = txn.table("requests").get(real)["approvals"][0]  # type: ignore[index]
    target = w.vault.request(w.s("alice"), "db-root", "r", "t", 60)
    _tamper_request(w, target.id, state="approved", approvals=[approval])
    with pytest.raises(IntegrityError, match="forged"):
        w.vault.reveal(w.s("alice"), target.id)


def test_extending_an_approval_expiry_in_the_file_breaks_the_grant(w: World) -> None:
    req = w.checkout("db-root")
    with w.vault.store.read() as txn:
        approvals = txn.table("requests").get(req)["approvals"]  # type: ignore[index]
    approvals[0]["expires"] += 3600
    _tamper_request(w, req, approvals=approvals)
    w.clock.advance(15 * 60 + 10)  # past the real window, inside the forged one
    with pytest.raises(IntegrityError, match="forged"):
        w.vault.reveal(w.s("alice"), req)


# -- L1: fail closed ------------------------------------------------------------------------------
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
@pytest.mark.parametrize("step", ["write", "fsync"])
def test_audit_write_failure_releases_nothing(w: World, err: int, step: str) -> None:
    req = w.checkout("db-root")
    alice = w.s("alice")
    audit_path = file_store(w.vault).audit.path
    before_audit = audit_path.read_bytes()
    before_state = hashlib.sha256((w.root / "vault.json").read_bytes()).hexdigest()

    def fail(at: str) -> None:
        if at == step:
            raise OSError(err, "injected")

    file_store(w.vault).audit.fault = fail
    released = None
    with pytest.raises(StorageError, match="action refused"):
        released = w.vault.reveal(alice, req)
    assert released is None
    file_store(w.vault).audit.fault = None
    assert audit_path.read_bytes() == before_audit
    assert hashlib.sha256((w.root / "vault.json").read_bytes()).hexdigest() == before_state
    assert w.vault.checkout(req).state == "approved"
    # and once the disk recovers, the same approval still works exactly once
    assert w.vault.reveal(alice, req).reveal() == "initial-value-1"
    assert w.vault.verify_audit().ok


def test_state_write_failure_after_audit_releases_nothing(w: World) -> None:
    req = w.checkout("db-root")
    alice = w.s("alice")

    def fail(at: str) -> None:
        if at == "state":
            raise OSError(errno.ENOSPC, "injected")

    file_store(w.vault).fault = fail
    with pytest.raises(OSError):
        w.vault.reveal(alice, req)
    file_store(w.vault).fault = None
    assert w.vault.checkout(req).state == "approved"
    # the appended record is kept, and marked as describing a change that did not commit
    assert w.vault.reveal(alice, req).reveal() == "initial-value-1"
    names = [e for _, e, _ in events(w)]
    assert "audit.uncommitted" in names
    assert w.vault.verify_audit().ok
