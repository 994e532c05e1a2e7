"""One checkout, start to finish: countersign, reveal, copy, lease countdown, check-in.

The secret is masked until the explicit reveal key; copying claims it without
showing it. The first reveal or copy decrypts (and starts the lease); after
that the value comes from the app's memory, never from a second decrypt.

The same screen shows the other two kinds of release, told apart by their id:
a one-time onboarding secret (``o-``: approved like a checkout, revealed
once, then *activated* instead of checked in) and an emergency-kit use
(``e-``: already revealed when the screen opens, no approver, loud).
"""

from __future__ import annotations

from typing import Any, ClassVar

from glasskey.core.api import (
    Checkout,
    CheckoutKind,
    CheckoutState,
    GlasskeyError,
    RotationResult,
    SecretValue,
    Session,
    format_duration,
    parse_duration,
    printable,
)
from glasskey.tui.screens.confirm import ConfirmModal
from glasskey.tui.screens.countersign import CountersignModal
from glasskey.tui.screens.deny import DenyModal
from glasskey.tui.screens.note import NoteModal
from glasskey.tui.screens.secret_screen import SecretScreen
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.states import CLOSED_REASONS, checkout_label, utc
from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Header, Static

S = CheckoutState

STYLE_CLASSES = ("-ok", "-dim", "-info", "-warn", "-alert")


def onboarding_identity(cred_name: str) -> str:
    """The identity in an onboarding secret's credential name (onboard-IDENTITY-xxxxxx)."""
    if cred_name.startswith("onboard-") and len(cred_name) > len("onboard-") + 7:
        return cred_name[len("onboard-"):-7]
    return cred_name


class RevealScreen(SecretScreen):
    """The checkout screen (also called the reveal screen) for one request id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "countersign", "Countersign", id="checkout.countersign",
                tooltip="An approver authenticates at this keyboard and approves"),
        Binding("a", "approve", "Approve", id="checkout.approve",
                tooltip="Approve as yourself (a TOTP code not used yet)"),
        Binding("d", "deny", "Deny", id="checkout.deny", tooltip="Deny with a reason"),
        Binding("r", "reveal", "Reveal", id="checkout.reveal",
                tooltip="Show or mask the secret (the first reveal starts the lease)"),
        Binding("c", "copy", "Copy", id="checkout.copy",
                tooltip="Copy the secret to the clipboard without showing it"),
        Binding("i", "checkin", "Check in", id="checkout.checkin",
                tooltip="End the checkout now; the credential is rotated"),
        Binding("e", "extend", "Extend", id="checkout.extend",
                tooltip="Lengthen your lease, up to the credential's maximum (audited)"),
        Binding("t", "activate", "Activated", id="checkout.activate",
                tooltip="Onboarding: the recipient used it (first use); revoke it now"),
        Binding("x", "cancel_request", "Cancel request", id="checkout.cancel",
                tooltip="Withdraw a request that was not revealed"),
        Binding("escape", "back", "Back", id="checkout.back"),
    ]

    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id
        #: checkout, onboarding or emergency: the record's kind, known once it is read.
        self.kind: str = CheckoutKind.CHECKOUT
        self.checkout: Checkout | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        with Vertical(id="reveal-body"):
            yield Static("", id="reveal-title", markup=False)
            yield Static("", id="reveal-state", markup=False)
            yield Static("", id="reveal-details", markup=False)
            yield Static("", id="reveal-lease", markup=False)
            yield from self.compose_secret("Secret")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()

    # -- state ----------------------------------------------------------------------------
    @property
    def _mine(self) -> bool:
        session = self.gk.session
        return bool(session and self.checkout and self.checkout.requester == session.name)

    def refresh_view(self) -> None:
        try:
            self.checkout = self.gk.vault.checkout(self.request_id)
        except GlasskeyError as exc:
            self.query_one("#reveal-title", Static).update(str(exc))
            return
        c = self.checkout
        self.kind = c.kind
        if c.state != S.CHECKED_OUT:
            # Checked in, expired, rotated: the value in memory is worthless now; drop it.
            self.gk.forget_secret(c.id)
        if self.kind == "onboarding":
            title = f"Onboarding secret for {onboarding_identity(c.cred_name)}  ·  {c.id}"
        elif self.kind == "emergency":
            title = f"EMERGENCY USE of {c.cred_name}  ·  {c.id}"
        else:
            title = f"{c.cred_name}  ·  checkout {c.id}"
        self.query_one("#reveal-title", Static).update(title)
        self.paint_secret()
        self.tick()

    def sealed_text(self) -> str:
        c = self.checkout
        if c is None:
            return "sealed"
        shown = c.display_state(self.gk.now())
        if shown == S.APPROVED and self._mine and self.kind == "onboarding":
            return "approved: r reveals it, c copies it; it can be shown exactly once"
        if shown == S.APPROVED and self._mine:
            return "approved: r reveals it, c copies it (the lease starts then)"
        if shown == S.REQUESTED:
            return (f"waiting for {c.needed - len(c.approvals)} approval(s): "
                    "s lets an approver countersign at this keyboard")
        if shown == S.CHECKED_OUT and self._mine and self.kind == "checkout":
            return ("revealed before this session: r shows it again, c copies "
                    "it (recorded as a re-display, not a new release)")
        if shown in (S.CHECKED_OUT, "overdue") and self._mine:
            return "revealed in another session; a second reveal needs a new request and approval"
        if shown in (S.CHECKED_OUT, "overdue"):
            return f"held by {c.requester}"
        if c.state == S.CLOSED and self.kind == "onboarding":
            return f"{c.closed_reason or 'closed'}: revoked, it opens nothing now"
        if c.state == S.CLOSED and c.revealed_at:
            return "returned and rotated: the value shown before is dead"
        if c.state == S.CLOSED:
            return "closed without release"
        return "sealed"

    def tick(self) -> None:
        c = self.checkout
        if c is None:
            return
        now = self.gk.now()
        label, style = checkout_label(c, now)
        if self.kind == "onboarding" and c.state == S.CHECKED_OUT:
            label, style = "delivered: waiting for the recipient's first use", "warn"
        elif self.kind == "onboarding" and c.closed_reason == "expired":
            label, style = "EXPIRED unused: revoked", "alert"
        elif self.kind == "emergency" and c.state == S.CHECKED_OUT:
            label, style = f"EMERGENCY: {label}", "alert"
        state = self.query_one("#reveal-state", Static)
        state.update(label)
        for cls in STYLE_CLASSES:
            state.set_class(cls == f"-{style}", cls)
        approvals = ", ".join(
            f"{a.approver} at {utc(a.at, seconds=True)} (claim by {utc(a.expires)})"
            for a in c.approvals) or "none yet"
        if self.kind == "onboarding":
            details = [
                f"Identity   {onboarding_identity(c.cred_name)}",
                f"Deliverer  {c.requester}",
                f"Reason     {c.reason}",
                f"Ticket     {c.ticket}",
                f"Approvals  {len(c.approvals)} of {c.needed}: {approvals}",
            ]
        elif self.kind == "emergency":
            details = [
                f"Holder     {c.requester}",
                f"Reason     {c.reason}",
                f"Ticket     {c.ticket}",
                f"Duration   {format_duration(c.duration)}",
                "Approvals  NONE: opened with the emergency kit, which is now burned; "
                "two approvers must review this use",
            ]
        else:
            details = [
                f"Requester  {c.requester}",
                f"Reason     {c.reason}",
                f"Ticket     {c.ticket}",
                f"Duration   {format_duration(c.duration)}",
                f"Approvals  {len(c.approvals)} of {c.needed}: {approvals}",
            ]
        if c.state == S.CLOSED:
            details.append(f"Closed     {CLOSED_REASONS.get(c.closed_reason, c.closed_reason)}"
                           + (f" at {utc(c.ended_at, seconds=True)}" if c.ended_at else ""))
            if c.rotation:
                details.append(self._rotation_text(c.rotation))
            if c.deny_reason:
                details.append(f"Denied by  {c.denied_by}: {c.deny_reason}")
        elif c.state == S.ROTATION_FAILED and c.rotation:
            details.append(self._rotation_text(c.rotation))
        self.query_one("#reveal-details", Static).update(
            "\n".join(printable(d) for d in details))
        lease = ""
        if self.kind == "onboarding" and c.state != S.CLOSED:
            left = c.created + c.duration - now
            lease = (f"Expires    in {format_duration(left)}: unused by then, it is revoked "
                     "and raises an alert" if left > 0 else
                     "Expires    EXPIRED: the next sweep revokes it")
            if c.state == S.CHECKED_OUT:
                lease += "\nDelivered  t when the recipient has used it (revokes it)"
        elif c.lease_expires is not None and c.state in (S.CHECKED_OUT,):
            left = c.lease_expires - now
            if left >= 0:
                lease = (f"Lease      {format_duration(left)} left "
                         f"(until {utc(c.lease_expires, seconds=True)} UTC)")
            else:
                lease = (f"Lease      OVERDUE by {format_duration(-left)}: check in now "
                         "(it is checked in and rotated automatically)")
        elif c.state == S.APPROVED and c.approvals:
            claim = min(a.expires for a in c.approvals) - now
            lease = (f"Claim      within {format_duration(claim)}; the "
                     f"{format_duration(c.duration)} lease starts at the reveal")
        self.query_one("#reveal-lease", Static).update(lease)
        self.paint_clipboard()
        self.recheck_keys()

    @staticmethod
    def _rotation_text(rotation: dict[str, Any]) -> str:
        outcome = rotation.get("outcome", "")
        if outcome == "committed":
            return f"Rotation   done: now version {rotation.get('version')}"
        if outcome == "failed":
            return f"Rotation   FAILED: {rotation.get('error', '')}"
        return f"Rotation   {outcome}"

    # -- which keys apply now -----------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        c = self.checkout
        session = self.gk.session
        if action == "back":
            return True
        if c is None or session is None:
            return False
        state = c.display_state(self.gk.now())
        mine = c.requester == session.name
        approver = session.has("approver")
        if action == "countersign":
            return state == S.REQUESTED
        if action == "approve":
            return state == S.REQUESTED and approver and not mine
        if action == "deny":
            return state in (S.REQUESTED, S.APPROVED) and approver and not mine
        if action in ("reveal", "copy"):
            return mine and (self.request_id in self.gk.secrets or state == S.APPROVED or (
                state == S.CHECKED_OUT and self.kind == "checkout"))
        if action == "extend":
            return mine and state == S.CHECKED_OUT and self.kind == "checkout"
        if action == "checkin":
            return self.kind != "onboarding" and state in (
                S.CHECKED_OUT, "overdue", S.ROTATION_FAILED) and (
                mine or approver or session.has("admin"))
        if action == "activate":
            return self.kind == "onboarding" and c.state == S.CHECKED_OUT
        if action == "cancel_request":
            return state in (S.REQUESTED, S.APPROVED, "approval-expired") and (
                mine or session.has("admin"))
        return True

    # -- actions --------------------------------------------------------------------------
    def fetch_secret(self, session: Session) -> SecretValue:
        """Decrypt (this starts the lease); or show again what was revealed before."""
        c = self.checkout
        if c is not None and c.state == S.CHECKED_OUT and self.kind == "checkout":
            # Revealed before this session (a lock, quit or restart since): the holder,
            # re-authenticated, sees it again; audited as checkout.redisplayed.
            return self.gk.vault.redisplay(session, self.request_id)
        return self.gk.vault.reveal(session, self.request_id)

    def fetch_ended(self) -> None:
        self.refresh_view()

    def action_extend(self) -> None:
        session = self.gk.session
        c = self.checkout
        if session is None or c is None:
            return
        vault = self.gk.vault

        def extend(text: str) -> Checkout:
            return vault.extend_lease(session, self.request_id, parse_duration(text))

        def done(result: Checkout | None) -> None:
            if result is not None and result.lease_expires is not None:
                self.gk.notify(f"Lease on {result.cred_name} extended: "
                               f"{format_duration(result.lease_expires - self.gk.now())} left.",
                               title="Extended", markup=False)
            self.refresh_view()

        self.app.push_screen(NoteModal(
            f"Extend your lease on {c.cred_name}",
            f"Up to the credential's maximum lease counted from the reveal "
            f"({format_duration(c.duration)} was approved); beyond it, request again.",
            extend, label="Add", placeholder="e.g. 30m",
            required="Say how long: 90s, 30m, 1h30m or 2h."), done)

    def action_countersign(self) -> None:
        if self.checkout is not None:
            self.gk.push_screen(CountersignModal(self.checkout), self._after_approval)

    def action_approve(self) -> None:
        if self.checkout is not None and self.gk.session is not None:
            self.gk.push_screen(StepUpModal(self.checkout), self._after_approval)

    def _after_approval(self, result: Checkout | None) -> None:
        if result is not None:
            self.gk.notify(
                f"{result.cred_name} approved by {', '.join(result.approvers)}.",
                title="Approved", markup=False)
        self.refresh_view()

    def action_deny(self) -> None:
        if self.checkout is not None:
            self.gk.push_screen(DenyModal(self.checkout), self._after_deny)

    def _after_deny(self, result: Checkout | None) -> None:
        if result is not None:
            self.gk.notify(f"Request {result.id} for {result.cred_name} denied.",
                           title="Denied", markup=False)
        self.refresh_view()

    def action_cancel_request(self) -> None:
        c = self.checkout
        what = c.cred_name if c is not None else self.request_id

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel_request()

        self.app.push_screen(ConfirmModal(f"Withdraw your request for {what}?",
                                          "Nothing is released; a new request needs a new "
                                          "approval."), answered)

    def _cancel_request(self) -> None:
        session = self.gk.session
        if session is None:
            return
        try:
            self.gk.vault.cancel(session, self.request_id)
        except GlasskeyError as exc:
            self.gk.notify(str(exc), severity="error", markup=False)
        else:
            self.gk.notify("Request withdrawn; nothing was released.", markup=False)
        self.refresh_view()

    def action_checkin(self) -> None:
        if self.gk.session is None or self._busy:
            return
        c = self.checkout
        what = c.cred_name if c is not None else self.request_id

        def answered(yes: bool | None) -> None:
            if yes:
                self._do_checkin()

        self.app.push_screen(ConfirmModal(
            f"Check in {what} and rotate it now?",
            "The lease ends and the credential gets a new value on its target: the value "
            "you hold stops working."), answered)

    def _do_checkin(self) -> None:
        session = self.gk.session
        if session is None or self._busy:
            return
        self._busy = True
        self.gk.forget_secret(self.request_id)
        self.query_one("#reveal-lease", Static).update("Checking in and rotating…")
        vault, rid = self.gk.vault, self.request_id
        run_vault_call(self, "checkin", lambda: vault.checkin(session, rid))

    def _checked_in(self, result: RotationResult) -> None:
        self.notify_rotation(result, failed=": rotation FAILED", title="Checked in",
                             done=f" checked in and rotated (version {result.version}).")
        self.refresh_view()

    def action_activate(self) -> None:
        session = self.gk.session
        if session is None or self._busy:
            return
        self._busy = True
        self.gk.forget_secret(self.request_id)
        self.query_one("#reveal-lease", Static).update("Revoking…")
        vault, rid = self.gk.vault, self.request_id
        run_vault_call(self, "activate", lambda: vault.activate_onboarding(session, rid))

    def _activated(self, result: Checkout) -> None:
        self.gk.notify(f"{result.id} activated and revoked; it waits for review.",
                       title="Activated", markup=False)
        self.gk.poll_vault()
        self.refresh_view()

    @on(Done)
    def _job_done(self, event: Done[Any]) -> None:
        self._busy = False
        if event.job == "checkin":
            self._checked_in(event.result)
        else:
            self._activated(event.result)

    @on(Failed)
    def _job_failed(self, event: Failed) -> None:
        self._busy = False
        checkin = event.job == "checkin"
        self.gk.notify(event.sentence, title="Check-in failed" if checkin else "Not activated",
                       severity="error", markup=False)
        if not checkin:
            self.gk.poll_vault()
        self.refresh_view()

    def action_back(self) -> None:
        self.gk.pop_screen()
