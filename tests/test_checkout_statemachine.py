"""A hypothesis state machine over the whole checkout lifecycle.

Invariants after every step (issue 3): no reveal without k distinct authorised
operators; never two holders of one credential; every revealed value is rotated
before the credential's next reveal; the audit log verifies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis.strategies as st
from checkout_world import World, make_world
from glasskey.core.errors import GlasskeyError
from helpers import file_store
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

REQUESTERS = ("alice", "bob", "carol")
APPROVERS = ("bob", "carol", "dave")
CREDS = {"c1": 2, "c2": 3}
SOAK = os.environ.get("GLASSKEY_SOAK") == "1"
#: How often each interesting transition happened across the run (a coverage check).
REACHED: dict[str, int] = {}


def reached(what: str) -> None:
    REACHED[what] = REACHED.get(what, 0) + 1
    event(what)


@dataclass
class Req:
    id: str
    cred: str
    requester: str
    created: float
    approvals: list[str] = field(default_factory=list)
    approved_until: float | None = None
    state: str = "requested"
    lease_until: float | None = None


class CheckoutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="gk-sm-"))
        self.w: World = make_world(self.tmp, ("alice", "bob", "carol", "dave"))
        for name, k in CREDS.items():
            self.w.add(name, f"initial-{name}", k=k)
        for name in ("alice", "bob", "carol", "dave"):
            self.w.unlock(name)
        self.reqs: dict[str, Req] = {}
        self.revealed: dict[str, list[str]] = {c: [] for c in CREDS}

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize()
    def start(self) -> None:
        assert self.w.vault.verify_audit().ok

    def open_reqs(self) -> list[Req]:
        return [r for r in self.reqs.values() if r.state not in ("closed",)]

    def now(self) -> float:
        return self.w.clock.now()

    # -- rules ------------------------------------------------------------------------------
    @rule(who=st.sampled_from(REQUESTERS), cred=st.sampled_from(sorted(CREDS)),
          duration=st.integers(60, 900))
    def request(self, who: str, cred: str, duration: int) -> None:
        busy = any(r.cred == cred for r in self.open_reqs())
        try:
            co = self.w.vault.request(self.w.s(who), cred, "reason", "T-1", duration)
        except GlasskeyError:
            assert busy or self._approvers_available(who, cred) < CREDS[cred] - 1
            return
        assert not busy, "a second open checkout was accepted for one credential"
        self.reqs[co.id] = Req(co.id, cred, who, self.now())

    def _approvers_available(self, who: str, cred: str) -> int:
        return len([a for a in APPROVERS if a != who])

    @precondition(lambda self: bool(self.open_reqs()))
    @rule(data=st.data(), approver=st.sampled_from(APPROVERS))
    def approve(self, data: st.DataObject, approver: str) -> None:
        self._approve(data.draw(st.sampled_from(self.open_reqs())), approver)

    @precondition(lambda self: any(r.state == "requested" for r in self.open_reqs()))
    @rule(data=st.data())
    def approve_pending(self, data: st.DataObject) -> None:
        """A legitimate approver countersigns a waiting request (the common path)."""
        r = data.draw(st.sampled_from([r for r in self.open_reqs() if r.state == "requested"]))
        legal = [a for a in APPROVERS if a != r.requester and a not in r.approvals]
        self._approve(r, data.draw(st.sampled_from(legal)))

    def _approve(self, r: Req, approver: str) -> None:
        allowed = (r.state == "requested" and approver != r.requester
                   and approver not in r.approvals and self.now() < r.created + 3600)
        try:
            co = self.w.vault.approve(self.w.s(approver), r.id)
        except GlasskeyError:
            assert not allowed, f"approval by {approver} refused unexpectedly"
            self._sync(r)
            return
        assert allowed, f"approval by {approver} accepted but the model forbids it"
        r.approvals.append(approver)
        reached(f"approved k={CREDS[r.cred]}")
        if len(r.approvals) >= CREDS[r.cred] - 1:
            r.state = "approved"
            r.approved_until = min(a.expires for a in co.approvals)
        assert co.state == r.state

    @precondition(lambda self: bool(self.open_reqs()))
    @rule(data=st.data())
    def reveal(self, data: st.DataObject) -> None:
        r = data.draw(st.sampled_from(self.open_reqs()))
        # mostly the requester (the interesting path), sometimes someone else
        who = data.draw(st.sampled_from([r.requester] * 4 + list(REQUESTERS)))
        self._reveal(r, who)

    def _reveal(self, r: Req, who: str) -> None:
        allowed = (r.state == "approved" and who == r.requester
                   and r.approved_until is not None and self.now() < r.approved_until)
        try:
            value = self.w.vault.reveal(self.w.s(who), r.id).reveal()
        except GlasskeyError:
            assert not allowed, "an allowed reveal was refused"
            self._sync(r)
            return
        assert allowed, "a value was released that the two-person rule forbids"
        distinct = set(r.approvals)
        assert len(distinct) >= CREDS[r.cred] - 1 and r.requester not in distinct
        assert value not in self.revealed[r.cred], "a revealed value was not rotated"
        self.revealed[r.cred].append(value)
        reached("revealed")
        r.state = "checked-out"
        self._sync(r)

    @precondition(lambda self: any(r.state == "approved" for r in self.open_reqs()))
    @rule(data=st.data())
    def reveal_approved(self, data: st.DataObject) -> None:
        """The requester claims an approved checkout (allowed unless the window passed)."""
        r = data.draw(st.sampled_from([r for r in self.open_reqs() if r.state == "approved"]))
        self._reveal(r, r.requester)

    @precondition(lambda self: bool(self.open_reqs()))
    @rule(data=st.data(), approver=st.sampled_from(APPROVERS))
    def deny(self, data: st.DataObject, approver: str) -> None:
        r = data.draw(st.sampled_from(self.open_reqs()))
        try:
            self.w.vault.deny(self.w.s(approver), r.id, "no")
        except GlasskeyError:
            assert r.state not in ("requested", "approved") or approver == r.requester \
                or self.w.vault.checkout(r.id).state not in ("requested", "approved")
        self._sync(r)

    @precondition(lambda self: bool(self.open_reqs()))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        r = data.draw(st.sampled_from(self.open_reqs()))
        try:
            self.w.vault.cancel(self.w.s(r.requester), r.id)
        except GlasskeyError:
            assert self.w.vault.checkout(r.id).state not in ("requested", "approved")
        self._sync(r)

    @precondition(lambda self: any(r.state == "checked-out" for r in self.open_reqs()))
    @rule(data=st.data())
    def checkin(self, data: st.DataObject) -> None:
        r = data.draw(st.sampled_from([r for r in self.open_reqs()
                                       if r.state == "checked-out"]))
        result = self.w.vault.checkin(self.w.s(r.requester), r.id)
        assert result.outcome in ("committed", "nothing-to-do")
        self._sync(r)
        assert r.state == "closed"
        reached("checked-in")

    @rule(seconds=st.sampled_from([10, 10, 120, 120, 600, 901, 3601]))
    def time_passes(self, seconds: int) -> None:
        self.w.clock.advance(seconds)

    @rule(who=st.sampled_from(("alice", "bob", "carol", "dave")))
    def sweep(self, who: str) -> None:
        self.w.vault.sweep(self.w.s(who))
        for r in self.open_reqs():
            self._sync(r)

    def _sync(self, r: Req) -> None:
        co = self.w.vault.checkout(r.id)
        r.state = co.state if co.state != "rotating" else "checked-out"
        if co.lease_expires:
            r.lease_until = co.lease_expires

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def one_holder_per_credential(self) -> None:
        holders: dict[str, int] = {}
        for co in self.w.vault.checkouts():
            if co.state in ("requested", "approved", "checked-out", "rotating"):
                holders[co.cred_name] = holders.get(co.cred_name, 0) + 1
        assert all(n <= 1 for n in holders.values()), holders

    @invariant()
    def releases_match_approvals(self) -> None:
        for e in file_store(self.w.vault).audit.entries():
            if e["event"] == "checkout.revealed":
                approvers = set(e["details"]["approvers"])
                assert e["actor"] not in approvers
                cred = e["details"]["credential"]
                assert len(approvers) >= CREDS[cred] - 1

    @invariant()
    def audit_verifies(self) -> None:
        result = self.w.vault.verify_audit()
        assert result.ok, result.reason


CheckoutMachine.TestCase.settings = settings(
    max_examples=300 if SOAK else 40, stateful_step_count=40, deadline=None,
    # CI explores a fixed, reproducible set of runs (the reachability guard below
    # must not depend on luck); the soak run explores new ones every time.
    derandomize=not SOAK, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCheckoutMachine = CheckoutMachine.TestCase


def test_zz_machine_reached_the_interesting_transitions() -> None:
    """Guard against a machine that never reveals (runs after the machine above)."""
    assert REACHED.get("revealed", 0) >= 3, REACHED
    assert REACHED.get("checked-in", 0) >= 1, REACHED
    assert REACHED.get("approved k=3", 0) >= 1, REACHED
