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

from glasskey.core.errors import GlasskeyError
from glasskey.core.models import (
    Checkout,
    CheckoutKind,
    CheckoutState,
    format_duration,
    parse_duration,
)
from glasskey.core.rotation import RotationResult
from glasskey.core.text import printable
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.screens.confirm import ConfirmModal
from glasskey.tui.screens.countersign import CountersignModal
from glasskey.tui.screens.deny import DenyModal
from glasskey.tui.screens.note import NoteModal
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.secret import SecretView
from glasskey.tui.widgets.states import CLOSED_REASONS, checkout_label, utc
from textual import work
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


class RevealScreen(GlasskeyScreen):
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
        super().__init__()
        self.request_id = request_id
        #: checkout, onboarding or emergency: the record's kind, known once it is read.
        self.kind: str = CheckoutKind.CHECKOUT
        self.checkout: Checkout | None = None
        self._busy = False
        self._keys_sig: tuple[str, bool, str] = ("", False, "")

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        with Vertical(id="reveal-body"):
            yield Static("", id="reveal-title", markup=False)
            yield Static("", id="reveal-state", markup=False)
            yield Static("", id="reveal-details", markup=False)
            yield Static("", id="reveal-lease", markup=False)
            with Vertical(id="secret-box") as box:
                box.border_title = "Secret"
                yield SecretView(id="secret")
                yield Static("", id="secret-hint", markup=False)
            yield Static("", id="clipboard-status", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()

    # -- state ----------------------------------------------------------------------------
    @property
    def _mine(self) -> bool:
        session = self.gk.session
        return bool(session and self.checkout and self.checkout.requester == session.name)

    def _shown_state(self) -> str:
        if self.checkout is None:
            return ""
        return self.checkout.display_state(self.gk.now())

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
        self._paint_secret()
        self.tick()
        self._refresh_keys()

    def _refresh_keys(self) -> None:
        """Recompute the footer only when what the keys depend on changed."""
        c = self.checkout
        sig = (c.display_state(self.gk.now()) if c else "", self.request_id in self.gk.secrets,
               self.gk.session.name if self.gk.session else "")
        if sig != self._keys_sig:
            self._keys_sig = sig
            self.refresh_bindings()

    def _paint_secret(self) -> None:
        c = self.checkout
        view = self.query_one("#secret", SecretView)
        secret = self.gk.secrets.get(self.request_id)
        hint = ""
        if secret is not None:
            view.set_secret(secret)
            hint = ("r hides it again · c copies it" if view.shown
                    else "r shows it · c copies it without showing it")
        else:
            placeholder = "sealed"
            if c is not None:
                shown = c.display_state(self.gk.now())
                if shown == S.APPROVED and self._mine and self.kind == "onboarding":
                    placeholder = ("approved: r reveals it, c copies it; it can be shown "
                                   "exactly once")
                elif shown == S.APPROVED and self._mine:
                    placeholder = "approved: r reveals it, c copies it (the lease starts then)"
                elif shown == S.REQUESTED:
                    placeholder = (f"waiting for {c.needed - len(c.approvals)} approval(s): "
                                   "s lets an approver countersign at this keyboard")
                elif shown == S.CHECKED_OUT and self._mine and self.kind == "checkout":
                    placeholder = ("revealed before this session: r shows it again, c copies "
                                   "it (recorded as a re-display, not a new release)")
                elif shown in (S.CHECKED_OUT, "overdue") and self._mine:
                    placeholder = ("revealed in another session; a second reveal needs a "
                                   "new request and approval")
                elif shown in (S.CHECKED_OUT, "overdue"):
                    placeholder = f"held by {c.requester}"
                elif c.state == S.CLOSED and self.kind == "onboarding":
                    placeholder = f"{c.closed_reason or 'closed'}: revoked, it opens nothing now"
                elif c.state == S.CLOSED and c.revealed_at:
                    placeholder = "returned and rotated: the value shown before is dead"
                elif c.state == S.CLOSED:
                    placeholder = "closed without release"
            view.set_secret(None, placeholder)
        hint_widget = self.query_one("#secret-hint", Static)
        hint_widget.update(hint)
        hint_widget.display = bool(hint)

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
        self.query_one("#clipboard-status", Static).update(
            self.gk.clipboard_status(self.request_id))
        self._refresh_keys()

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
    def _claim(self) -> bool:
        """Decrypt once (this starts the lease); later calls use the value in memory."""
        if self.request_id in self.gk.secrets:
            return True
        session = self.gk.session
        if session is None:
            return False
        c = self.checkout
        try:
            if c is not None and c.state == S.CHECKED_OUT and self.kind == "checkout":
                # Revealed before this session (a lock, quit or restart since): the holder,
                # re-authenticated, sees it again; audited as checkout.redisplayed.
                secret = self.gk.vault.redisplay(session, self.request_id)
            else:
                secret = self.gk.vault.reveal(session, self.request_id)
        except GlasskeyError as exc:
            self.gk.notify(str(exc), title="Not revealed", severity="error", markup=False)
            self.refresh_view()
            return False
        self.gk.secrets[self.request_id] = secret
        self.refresh_view()
        return True

    def action_reveal(self) -> None:
        view = self.query_one("#secret", SecretView)
        if self.request_id in self.gk.secrets:
            view.shown = not view.shown
        elif self._claim():
            view.shown = True
        self._paint_secret()

    def action_copy(self) -> None:
        if self._claim():
            self.gk.copy_secret(self.request_id)
            self.tick()

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
        self._checkin(session)

    @work(thread=True, exclusive=True, group="checkin")
    def _checkin(self, session: Any) -> None:
        try:
            result: RotationResult | str = self.gk.vault.checkin(session, self.request_id)
        except GlasskeyError as exc:
            result = str(exc)
        self.app.call_from_thread(self._checked_in, result)

    def _checked_in(self, result: RotationResult | str) -> None:
        self._busy = False
        if isinstance(result, str):
            self.gk.notify(result, title="Check-in failed", severity="error", markup=False)
        elif result.outcome == "failed":
            self.gk.notify(f"{result.credential}: rotation FAILED: {result.message}",
                           title="ROTATION-FAILED", severity="error", markup=False)
        else:
            self.gk.notify(f"{result.credential} checked in and rotated "
                           f"(version {result.version}).", title="Checked in", markup=False)
        self.refresh_view()

    def action_activate(self) -> None:
        session = self.gk.session
        if session is None or self._busy:
            return
        self._busy = True
        self.gk.forget_secret(self.request_id)
        self.query_one("#reveal-lease", Static).update("Revoking…")
        self._activate(session)

    @work(thread=True, exclusive=True, group="checkin")
    def _activate(self, session: Any) -> None:
        try:
            result: Checkout | str = self.gk.vault.activate_onboarding(session, self.request_id)
        except GlasskeyError as exc:
            result = str(exc)
        self.app.call_from_thread(self._activated, result)

    def _activated(self, result: Checkout | str) -> None:
        self._busy = False
        if isinstance(result, str):
            self.gk.notify(result, title="Not activated", severity="error", markup=False)
        else:
            self.gk.notify(f"{result.id} activated and revoked; it waits for review.",
                           title="Activated", markup=False)
        self.gk.poll_vault()
        self.refresh_view()

    def action_back(self) -> None:
        self.gk.pop_screen()
