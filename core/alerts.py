"""Alerts: what every operator's screen must show until someone deals with it.

Gathered from the review queue, the flagged credentials, the open checkouts,
the kit, the notification queue and the sweep's failure records. Each is an
``Alert`` (core/models.py) whose ``message`` is the sentence the CLI prints.
"""

from __future__ import annotations

from glasskey.core.clock import iso
from glasskey.core.context import Service, VaultContext
from glasskey.core.emergency import KitService
from glasskey.core.models import Alert, AlertKind, CheckoutState, CredentialStatus
from glasskey.core.notify_service import NotifyService
from glasskey.core.requests import Requests
from glasskey.core.reviews import ReviewService
from glasskey.core.rotation import RotationService
from glasskey.core.sweep import SweepService

K = AlertKind


class AlertService(Service):
    def __init__(self, ctx: VaultContext, *, requests: Requests, reviews: ReviewService,
                 rotation: RotationService, kit: KitService, notify: NotifyService,
                 sweep: SweepService) -> None:
        super().__init__(ctx)
        self.requests = requests
        self.reviews = reviews
        self.rotation = rotation
        self.kit = kit
        self.notify = notify
        self.sweep = sweep

    def alerts(self) -> list[Alert]:
        """Every current alert, in a fixed order: reviews, credentials, leases, the kit,
        notifications, releases not yet rotated, items the sweep keeps failing on."""
        now = self.now()
        out: list[Alert] = []
        for item in self.reviews.review_queue():
            request_id = item.id if item.kind in ("checkout", "onboarding", "emergency") \
                else None
            if item.kind == "emergency":
                out.append(Alert(K.EMERGENCY_KIT_USED, item.subject, request_id,
                                 f"EMERGENCY KIT USED: {item.summary} — needs review by "
                                 f"{item.required - len(item.reviews)} more approver(s)"))
            elif item.overdue(now):
                out.append(Alert(K.REVIEW_OVERDUE, item.subject, request_id,
                                 f"review overdue: {item.summary}"))
        for flag in self.rotation.flagged():
            if flag["status"] == CredentialStatus.ROTATION_FAILED:
                out.append(Alert(K.ROTATION_FAILED, flag["name"], None,
                                 f"ROTATION-FAILED: {flag['name']}: {flag['failure']}"))
            elif flag["status"] == CredentialStatus.APPLY_PENDING:
                out.append(Alert(K.APPLY_PENDING, flag["name"], None,
                                 f"APPLY-PENDING: {flag['name']} waits for an operator to "
                                 "apply its new value"))
        open_now = self.requests.checkouts(open_only=True)
        for co in open_now:
            if co.display_state(now) == "overdue":
                out.append(Alert(K.OVERDUE, co.cred_name, co.id,
                                 f"OVERDUE: {co.cred_name} held by {co.requester} ({co.id})"))
        exposed = self.kit.kit_exposure()
        if exposed:
            out.append(Alert(K.KIT_BURNED, None, None,
                             f"KIT BURNED: {len(exposed)} credential(s) the old kit could "
                             "open still hold those values; run 'glasskey kit sweep' to "
                             "rotate them"))
        if self.kit.active_kit() is None:
            out.append(Alert(K.NO_KIT, None, None,
                             "no emergency kit is issued ('glasskey kit issue')"))
        out += self.notify.notify_alerts()
        for co in open_now:
            if co.released and co.state == CheckoutState.ROTATING:
                out.append(Alert(
                    K.RELEASED_NOT_ROTATED, co.cred_name, co.id,
                    f"RELEASED, NOT ROTATED: {co.cred_name} ({co.id}) was approved, "
                    f"then {co.end_reason}; {co.requester}'s next command or "
                    f"'glasskey checkin {co.id}' rotates it"))
        for failing, fail in sorted(self.sweep.sweep_failures().items()):
            hint = (f"; an admin can record it by hand: 'glasskey onboard revoke {failing} "
                    "--manual --note TEXT'") if fail.get("what") == "onboarding-expiry" else ""
            out.append(Alert(
                K.SWEEP_FAILING, None, failing,
                f"SWEEP FAILING: {failing} ({fail.get('what')}): {fail.get('reason')}; "
                f"{fail.get('attempts')} attempt(s), next after "
                f"{iso(float(fail.get('next_at', 0)))}{hint}"))
        return out
