"""Operators: who may act, in which roles, and whether they are locked out; admin work.

An admin suspends (``s``, with a reason) and reactivates (``r``) operators in
their own session. The work that re-seals every data key needs a second
operator at the same keyboard (the two-person modal): removing an operator
(``x``: every key re-split without them, then the leaver sweep is offered),
enrolling one (``n``: their TOTP QR and key are shown once) and issuing the
emergency kit (``k``: its recovery code and QR are shown once).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from glasskey.core.api import ROLES, Enrolment, KitIssued, Operator, OperatorSpec, Session
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.screens.emergency import CodeText, KitIssuedScreen
from glasskey.tui.screens.form import Enter, FormModal, Invalid, form_row
from glasskey.tui.screens.listing import ListScreen
from glasskey.tui.screens.sweep import SweepModal
from glasskey.tui.screens.twoperson import Progress, TwoPersonModal
from glasskey.tui.widgets.qr import QrCode
from glasskey.tui.widgets.states import utc
from glasskey.tui.widgets.vtable import Column, Row
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, Static


class OperatorsScreen(ListScreen[Operator]):
    """Every operator and their status; admin actions on the highlighted one."""

    LIST = "operators"
    COLUMNS = (
        Column("Operator", 16),
        Column("Roles", 26),
        Column("Status", 10),
        Column("Failed", 6),
        Column("Locked until", 16),
        Column("Enrolled", None, min_width=10),
    )
    EMPTY = "No operators."

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "suspend", "Suspend", id="operators.suspend",
                tooltip="Suspend the highlighted operator (admin; with a reason)"),
        Binding("r", "reactivate", "Reactivate", id="operators.reactivate",
                tooltip="Reactivate the highlighted suspended operator (admin)"),
        Binding("x", "remove", "Remove", id="operators.remove",
                tooltip="Remove: re-split every key without them (admin + a second operator)"),
        Binding("n", "enrol", "Enrol", id="operators.enrol",
                tooltip="Enrol a new operator (admin + a second operator)"),
        Binding("k", "issue_kit", "Issue kit", id="operators.kit",
                tooltip="Issue the emergency kit (two operators, one an admin); shown once"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._kit: dict[str, Any] | None = None

    def load(self) -> dict[str, Operator]:
        ops = sorted(self.gk.vault.operators(), key=lambda o: o.name)
        self._kit = self.gk.vault.active_kit()
        return {op.name: op for op in ops}

    def rows(self) -> Iterator[Row]:
        now = self.gk.now()
        session = self.gk.session
        for op in self.items.values():
            locked = utc(op.locked_until) if op.locked_until > now else ""
            style = "alert" if locked else "dim" if not op.active else (
                "ok" if session and op.name == session.name else "")
            yield Row(op.name, (op.name, ", ".join(op.roles), op.status,
                                str(op.failures) if op.failures else "",
                                locked, utc(op.created)), style)

    def summary(self) -> str:
        ops = self.items.values()
        active = sum(1 for op in ops if op.active)
        approvers = sum(1 for op in ops if op.active and op.has("approver"))
        kit = self._kit
        kit_text = f"kit {kit['fingerprint'][:9]}…" if kit else "NO emergency kit (k)"
        return (f"{len(ops)} operators  ·  {active} active  ·  {approvers} active approver"
                f"{'s' if approvers != 1 else ''}  ·  {kit_text}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("suspend", "reactivate", "remove", "enrol", "issue_kit"):
            session = self.gk.session
            if session is None:
                return False
            if action == "issue_kit":
                return True  # the core wants an admin among the two; the modal offers them
            if not session.has("admin"):
                return None  # shown, dimmed: admin work
            if action == "enrol":
                return True
            current = self.current() if self.is_mounted else None
            if current is None or current.name == session.name:
                return None
            if action == "suspend":
                return current.status == "active" or None
            if action == "reactivate":
                return current.status == "suspended" or None
            return current.status != "removed" or None
        return True

    # -- suspend / reactivate -------------------------------------------------------------
    def action_suspend(self) -> None:
        session, op = self.gk.session, self.current()
        if session is None or op is None:
            return
        name = op.name

        def job(second: Session, _progress: Progress) -> bool:
            self.gk.vault.suspend_operator([session, second], name, "suspended from the TUI")
            return True

        self.gk.push_screen(TwoPersonModal(
            f"Suspend {name}",
            f"{name} ({', '.join(op.roles)}) can no longer unlock, approve or reveal until "
            "two operators reactivate them. Their shares stay: to take those away, remove "
            "them (x). A second operator countersigns.",
            job, working="Suspending…", exclude=(name,), tone="warn"),
            lambda result: self._done(result, f"{name} suspended."))

    def action_reactivate(self) -> None:
        session, op = self.gk.session, self.current()
        if session is None or op is None:
            return
        name = op.name

        def job(second: Session, _progress: Progress) -> bool:
            self.gk.vault.reactivate_operator([session, second], name)
            return True

        self.gk.push_screen(TwoPersonModal(
            f"Reactivate {name}", f"{name} may act again. A second operator countersigns.",
            job, working="Reactivating…", exclude=(name,), tone="warn"),
            lambda result: self._done(result, f"{name} reactivated."))

    def _done(self, result: object, message: str) -> None:
        if result is not None:
            self.gk.notify(message, markup=False)
        self.gk.poll_vault()
        self.refresh_view()

    # -- two-person work --------------------------------------------------------------------
    def action_remove(self) -> None:
        session, op = self.gk.session, self.current()
        if session is None or op is None:
            return
        name = op.name

        def job(second: Session, progress: Progress) -> list[str]:
            return self.gk.vault.remove_operator([session, second], name, progress)

        def removed(reachable: list[str] | None) -> None:
            self.refresh_view()
            if reachable is None:
                return
            self.gk.notify(f"{name} removed; every data key re-split without them.",
                           title="Removed", markup=False)
            self.gk.push_screen(SweepModal(name, reachable), lambda _r: self.refresh_view())

        self.gk.push_screen(TwoPersonModal(
            f"Remove {name}",
            f"Every data key is re-split with a fresh polynomial among the remaining "
            f"operators, so no share {name} kept opens a current credential; their open "
            "requests end. Then you are offered the leaver sweep: rotating everything they "
            "could have seen.",
            job, working="Re-splitting every data key…", exclude=(name,), tone="error"),
            removed)

    def action_issue_kit(self) -> None:
        session = self.gk.session
        if session is None:
            return

        def job(second: Session, progress: Progress) -> KitIssued:
            return self.gk.vault.issue_kit([session, second], progress)

        def issued(result: KitIssued | None) -> None:
            self.refresh_view()
            if result is not None:
                self.gk.poll_vault()
                self.gk.push_screen(KitIssuedScreen(result))

        self.gk.push_screen(TwoPersonModal(
            "Issue the emergency kit",
            "A new recovery code gets a share of every data key, so that a requester and "
            "the code can open one credential when no approver can be reached. Any earlier "
            "kit is burned. The code and its QR are shown once, for paper and the safe.",
            job, working="Giving the kit a share of every data key…",
            admins_only=not session.has("admin")), issued)

    def action_enrol(self) -> None:
        if self.gk.session is None:
            return
        self.gk.push_screen(EnrolModal(), self._enrol_spec)

    def _enrol_spec(self, spec: OperatorSpec | None) -> None:
        session = self.gk.session
        if spec is None or session is None:
            return

        def job(second: Session, progress: Progress) -> Enrolment:
            return self.gk.vault.add_operator([session, second], spec, progress)

        def enrolled(result: Enrolment | None) -> None:
            self.refresh_view()
            if result is not None:
                self.gk.poll_vault()
                self.gk.push_screen(EnrolmentScreen(result))

        self.gk.push_screen(TwoPersonModal(
            f"Enrol {spec.name}",
            f"{spec.name} ({', '.join(spec.roles)}) gets a share of every data key, computed "
            "from the unlocked operators' shares; no other share changes.",
            job, working="Extending every key split…"), enrolled)



class EnrolModal(FormModal[OperatorSpec]):
    """The new operator's name, roles and passphrase (typed by them, twice)."""

    FORM = "enrol"
    FIELDS = ("enrol-name", "enrol-roles", "enrol-pass", "enrol-pass2")
    ENTER = Enter.NEXT_EMPTY
    STRIP = False  # a passphrase is taken as typed
    SUBMIT = ("Next", "Then a second operator authenticates")

    def compose_form(self) -> ComposeResult:
        yield Static("Enrol an operator", classes="dialog-title", markup=False)
        yield Static("The new operator types their own passphrase. Their TOTP key is "
                     "shown once next, as a QR code for their authenticator; they become "
                     "active at their first unlock.", classes="dialog-help", markup=False)
        for label, wid, placeholder, password in (
                ("Name", "enrol-name", "e.g. jdoe", False),
                ("Roles", "enrol-roles", ", ".join(ROLES), False),
                ("Passphrase", "enrol-pass", "the new operator types it", True),
                ("Again", "enrol-pass2", "once more", True)):
            yield form_row(label, Input(id=wid, compact=True, placeholder=placeholder,
                                        password=password))

    def submit(self, session: Session) -> OperatorSpec:
        name = self.value("enrol-name").strip()
        roles = tuple(r.strip() for r in self.value("enrol-roles").split(",") if r.strip())
        if not name or not roles:
            raise Invalid("Give a name and at least one role.")
        if self.value("enrol-pass") != self.value("enrol-pass2"):
            for wid in ("enrol-pass", "enrol-pass2"):
                self.field(wid).value = ""
            raise Invalid("The two passphrases differ.", "enrol-pass")
        # The core checks the name, roles and passphrase policy when it enrols.
        return OperatorSpec(name, roles, self.value("enrol-pass"))


class EnrolmentScreen(GlasskeyScreen):
    """The new operator's TOTP key as a QR code and base32, shown once."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,escape", "done", "Done: it is in the authenticator",
                key_display="enter", id="enrolment.done",
                tooltip="Close; the key is not shown again"),
    ]

    def __init__(self, enrolment: Enrolment) -> None:
        super().__init__()
        self._enrolment: Enrolment | None = enrolment

    def compose(self) -> ComposeResult:
        e = self._enrolment
        assert e is not None
        yield Header()
        with Horizontal(id="kit-body"):
            yield QrCode(e.uri, id="kit-qr")
            with Vertical(id="kit-text"):
                yield Static(f"{e.name} is enrolled ({e.status})", id="kit-title",
                             markup=False)
                yield Static(f"{e.name} scans this QR code with their authenticator app (or "
                             "types the key below). Shown ONCE. They become active at their "
                             "first unlock.", id="kit-help", markup=False)
                yield Static("TOTP key (base32)", classes="kit-label", markup=False)
                yield CodeText(e.totp_secret, id="kit-code", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True

    def action_done(self) -> None:
        self._enrolment = None
        self.gk.pop_screen()
