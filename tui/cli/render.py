"""One renderer per result type: its JSON document and its line for a person.

A result shown by several commands (a rotation, an enrolment, a checkout) is rendered
here once, so ``checkin``, ``reconcile`` and ``apply --confirm`` cannot drift apart.
Lines are returned, not printed: the caller hands them to :func:`output.show`, which
escapes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from glasskey.core.api import Alert, Checkout, Enrolment, format_duration, iso
from glasskey.tui.cli.output import emit, out_json

if TYPE_CHECKING:
    from glasskey.core.api import DrillResult, ReviewItem, RotationResult, Vault, VerifyResult


# -- enrolments (init, operator add) ------------------------------------------------------------
def enrolment_doc(e: Enrolment) -> dict[str, Any]:
    """The TOTP key travels only while the operator is still enrolling."""
    return {"name": e.name, "status": e.status,
            **({"totp_uri": e.uri, "totp_secret": e.totp_secret}
               if e.status == "enrolling" else {})}


# -- rotations (checkin, reconcile, apply --confirm, sweeps) -------------------------------------
def rotation_doc(result: RotationResult, *, message: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"credential": result.credential, "rotation": result.outcome,
                           "version": result.version}
    if message:
        doc["message"] = result.message or None
    return doc


def rotation_detail(result: RotationResult) -> str:
    """'committed (version 3)', with the connector's message when there is one."""
    return (f"{result.outcome} (version {result.version})"
            f"{': ' + result.message if result.message else ''}")


def rotation_exit(result: RotationResult) -> int:
    """A failed rotation is a refusal (exit 1): the old value still works."""
    return 1 if result.outcome == "failed" else 0


def sweep_doc(results: Sequence[RotationResult]) -> list[dict[str, Any]]:
    return [{"credential": r.credential, "outcome": r.outcome, "message": r.message or None}
            for r in results]


def committed(results: Sequence[RotationResult]) -> int:
    return sum(1 for r in results if r.outcome == "committed")


# -- checkouts ------------------------------------------------------------------------------------
def checkout_line(c: Checkout, now: float) -> str:
    state = c.display_state(now)
    extra = ""
    if c.lease_expires and state == "checked-out":
        extra = f" ({format_duration(c.lease_expires - now)} left)"
    if c.released:
        extra += f" (released: approved, then {c.end_reason or c.closed_reason})"
    return (f"{c.id}  {c.cred_name:24} {state.upper() if state == 'overdue' else state}"
            f"{extra}  by {c.requester}  ticket {c.ticket}")


def onboarding_line(c: Checkout, now: float) -> str:
    return f"{c.id}  {c.cred_name:32} {c.display_state(now)} {c.closed_reason}  by {c.requester}"


def review_line(item: ReviewItem, now: float) -> str:
    flag = " OVERDUE" if item.overdue(now) else ""
    return f"{item.id}  {item.kind:10} {len(item.reviews)}/{item.required}{flag}  {item.summary}"


# -- credentials and operators -----------------------------------------------------------------
def cred_doc(vault: Vault, c: Any, active: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A credential with what is happening to it now (who holds it, overdue or not)."""
    entry = active.get(c.id)
    state = c.status
    holder = None
    if entry:
        state = entry["state"]
        holder = entry["requester"]
        if state == "checked-out" and entry.get("lease_expires") and \
                vault.now() >= float(entry["lease_expires"]):
            state = "overdue"
    return {"name": c.name, "kind": c.kind, "connector": c.connector, "target": c.target,
            "version": c.version, "status": c.status, "state": state, "holder": holder,
            "request": entry["request"] if entry else None,
            "rotated_at": iso(c.rotated_at), "k": c.policy.k,
            "max_duration": c.policy.max_duration, "failure": c.failure or None}


def cred_line(row: dict[str, Any]) -> str:
    holder = f" {row['holder']}" if row["holder"] else ""
    state = row["state"].upper() if row["state"] in ("rotation-failed", "overdue") \
        else row["state"]
    return (f"{row['name']:28} {row['kind']:12} {state}{holder}  v{row['version']} "
            f"rotated {row['rotated_at']}")


def operator_line(o: Any, now: float) -> str:
    lock = " (locked)" if o.locked_until > now else ""
    return f"{o.name:20} {o.status:10} {','.join(o.roles)}{lock}"


# -- alerts, audit, drills -----------------------------------------------------------------------
def show_alerts(alerts: Sequence[Alert], as_json: bool) -> None:
    """``glasskey alerts``: each alert's sentence (``Alert.message``), as it always was."""
    if as_json:
        out_json([a.message for a in alerts])
        return
    for a in alerts:
        emit(a.message)
    if not alerts:
        emit("no alerts")


def verify_line(result: VerifyResult) -> str:
    tail = (f"; a torn tail of {result.torn_tail_bytes} bytes will be quarantined at "
            "the next write") if result.torn_tail_bytes else ""
    back = (f"; WARNING: entry times run backwards at {len(result.backwards_times)} "
            f"entries (first: {result.backwards_times[0]})") if result.backwards_times else ""
    return (f"audit log intact: {result.entries} entries, {result.signatures} signatures "
            f"checked ({result.mode}), head {result.head.hash[:16]}{tail}{back}")


def drill_doc(result: DrillResult) -> dict[str, Any]:
    return {"kind": result.kind, "subject": result.subject, "version": result.version,
            "passed": list(result.checks)}


def drill_line(result: DrillResult) -> str:
    what = f"kit {result.subject}" if result.kind == "kit" else \
        f"{result.subject} version {result.version}"
    return (f"drill passed: {what}: {', '.join(result.checks)} (signed and audited; "
            "nothing was combined or released)")
