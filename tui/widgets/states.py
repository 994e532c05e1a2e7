"""What a credential's row says: its state as people read it, and how loud it is.

Pure functions over the core's read views (``Credential``, ``Checkout``) and a
time, shared by the dashboard, the approvals queue and the checkout screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from glasskey.core.api import Checkout, CheckoutKind, CheckoutState, Credential, format_duration

S = CheckoutState

#: Labels that count as alerts (someone must act).
ALERTS = frozenset({"ROTATION-FAILED", "OVERDUE", "APPLY-PENDING"})


@dataclass(frozen=True)
class CredState:
    label: str      # sealed / requested / approved / checked out / OVERDUE / ...
    style: str      # VirtualTable row style: dim / info / ok / warn / alert
    holder: str
    left: str       # time left on the lease (or the claim window)
    request_id: str | None


def utc(t: float, *, seconds: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.gmtime(t))


def credential_state(cred: Credential, checkout: Checkout | None, now: float) -> CredState:
    """The dashboard's view of one credential at ``now``."""
    if checkout is not None:
        shown = checkout.display_state(now)
        holder = checkout.requester
        rid = checkout.id
        if shown == "overdue" and checkout.lease_expires is not None:
            return CredState("OVERDUE", "alert", holder,
                             "+" + format_duration(now - checkout.lease_expires), rid)
        if shown == S.CHECKED_OUT and checkout.lease_expires is not None \
                and checkout.kind == CheckoutKind.EMERGENCY:
            return CredState("EMERGENCY use", "alert", holder,
                             format_duration(checkout.lease_expires - now), rid)
        if shown == S.CHECKED_OUT and checkout.lease_expires is not None:
            return CredState("checked out", "warn", holder,
                             format_duration(checkout.lease_expires - now), rid)
        if shown == S.REQUESTED:
            return CredState("requested", "info", holder, "", rid)
        if shown == S.APPROVED:
            claim = min((a.expires for a in checkout.approvals), default=now)
            return CredState("approved", "ok", holder, format_duration(claim - now), rid)
        if shown == "approval-expired":
            return CredState("approval expired", "dim", holder, "", rid)
        if shown == S.ROTATING:
            return CredState("rotating", "info", holder, "", rid)
        if shown == S.ROTATION_FAILED:
            return CredState("ROTATION-FAILED", "alert", holder, "", rid)
    if cred.status == "rotation-failed":
        return CredState("ROTATION-FAILED", "alert", "", "", None)
    if cred.status == "apply-pending":
        return CredState("APPLY-PENDING", "alert", "", "", None)
    return CredState("sealed", "dim", "", "", None)


CLOSED_REASONS = {
    "checkin": "checked in and rotated",
    "lease-expired": "lease expired, rotated",
    "returned": "returned and rotated",
    "denied": "denied",
    "cancelled": "cancelled by the requester",
    "expired": "expired before use",
    "activated": "activated and revoked",
    "requester-removed": "the requester was removed",
}


def checkout_label(checkout: Checkout, now: float) -> tuple[str, str]:
    """(label, style) of a checkout on its own screen."""
    shown = checkout.display_state(now)
    if shown == "overdue":
        return "OVERDUE", "alert"
    if shown == S.CLOSED:
        reason = CLOSED_REASONS.get(checkout.closed_reason, checkout.closed_reason or "closed")
        return f"closed: {reason}", "dim"
    return {
        S.REQUESTED: ("requested: waiting for approval", "info"),
        S.APPROVED: ("approved: ready to reveal", "ok"),
        S.CHECKED_OUT: ("checked out", "warn"),
        S.ROTATING: ("rotating", "info"),
        S.ROTATION_FAILED: ("ROTATION-FAILED", "alert"),
        "approval-expired": ("approval expired", "dim"),
    }.get(shown, (shown, "dim"))
