"""The vault: the one object the CLI and the TUI share, a thin facade over the services.

``Vault`` builds one ``VaultContext`` (store, clock, randomness, site
settings, the client's switches: core/context.py) and one object per
service (wired in core/services.py), each holding explicit references to the
few others it calls:

    operators   OperatorService     founding, enrolment, unlock, suspension
    factors     FactorService       an operator's own passphrase and TOTP key
    credentials CredentialService   add, import
    requests    Requests            request records and their ``active`` index
    reviews     ReviewService       the post-use review queue
    rotation    RotationService     check-in, rotation, releases
    finishing   RotationFinisher    manual apply, reconcile
    onboarding  OnboardingService   one-time onboarding secrets (and releases)
    checkout    CheckoutService     request, approve, deny, cancel, reveal
    holder      HolderService       re-display, lease extension
    kit         KitService          the emergency kit
    offboarding OffboardingService  removing an operator
    drill       DrillService        readiness drills
    notify      NotifyService       notifications
    sweep       SweepService        time-driven work
    alerts      AlertService        what needs someone now

The methods below keep the names and signatures the fronts, the benchmarks
and the tests call, and only delegate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from glasskey.core.audit import Signer
from glasskey.core.chain import Progress, VerifyResult
from glasskey.core.clock import Clock, Random
from glasskey.core.config import NotifySettings
from glasskey.core.connectors.base import Connector
from glasskey.core.context import VaultContext
from glasskey.core.credentials import CredentialSpec
from glasskey.core.crypto import kdf
from glasskey.core.drill import DrillResult
from glasskey.core.emergency import KitIssued
from glasskey.core.models import Alert, Checkout, Credential, Operator
from glasskey.core.onboarding import DEFAULT_EXPIRY
from glasskey.core.operators import Enrolment, OperatorSpec
from glasskey.core.requests import Requests
from glasskey.core.reviews import ReviewItem
from glasskey.core.roster import Roster
from glasskey.core.rotation import RotationResult
from glasskey.core.secret import SecretValue
from glasskey.core.services import VaultServices
from glasskey.core.session import Session
from glasskey.core.storage.interface import AuditCursor, AuditPage, Store
from glasskey.core.sweep import SweepReport

__all__ = ["SweepReport", "Vault", "VaultServices"]  # VaultServices: core/services.py

#: A progress callback (done, total), or None.
OnProgress = Callable[[int, int], None] | None


class Vault:
    """The fronts' entry point: every method delegates to one service."""

    def __init__(self, root: Path | str | Store, clock: Clock | None = None,
                 rng: Random | None = None, *, lock_timeout: float = 10.0,
                 allow_weak_kdf: bool = False, state_dir: Path | None = None) -> None:
        """``root`` is a vault directory or a ``postgresql://`` URL (opened by
        core/storage.open_store) or any ``Store`` (core/storage/interface.py): the
        services never build one."""
        self.context = VaultContext(root, clock, rng, lock_timeout=lock_timeout,
                                    allow_weak_kdf=allow_weak_kdf, state_dir=state_dir)
        self.services = VaultServices.build(self.context)
        self.attach_notifications()  # core/notify_service.py: after each commit, unlocked

    # -- the context -------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.context.root

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def clock(self) -> Clock:
        return self.context.clock

    @property
    def rng(self) -> Random:
        return self.context.rng

    @property
    def allow_weak_kdf(self) -> bool:
        return self.context.allow_weak_kdf

    @property
    def vault_id(self) -> str:
        return self.context.vault_id

    @property
    def kdf_target_seconds(self) -> float:
        return self.services.operators.kdf_target_seconds

    @kdf_target_seconds.setter
    def kdf_target_seconds(self, value: float) -> None:
        self.services.operators.kdf_target_seconds = value

    def now(self) -> float:
        return self.context.now()

    def new_id(self, prefix: str) -> str:
        return self.context.new_id(prefix)

    def cred_id_for(self, name: str) -> str:
        return self.context.cred_id_for(name)

    def site_config(self, connector: str) -> dict[str, str]:
        return self.context.site_config(connector)

    def site_setting(self, section: str, key: str) -> str | None:
        return self.context.site_setting(section, key)

    def seq(self) -> int:
        return self.store.seq()

    @property
    def pushes_changes(self) -> bool:
        """Whether another client's commit wakes ``wait_for_change`` at once (a
        database vault's LISTEN/NOTIFY); a directory vault is polled instead."""
        return callable(getattr(self.store, "wait_for_change", None))

    def wait_for_change(self, seen: int, timeout: float, poll: float = 0.1) -> int:
        """The change counter once it differs from ``seen``, or after ``timeout``
        seconds: pushed where the store can (``wait_for_change``, outside the Store
        Protocol), else a poll of ``seq()`` every ``poll`` seconds (a stat). A
        wake-up carries no data: the caller re-reads what it shows."""
        push: Callable[[int, float], int] | None = getattr(self.store, "wait_for_change", None)
        if callable(push):
            return int(push(seen, timeout))
        deadline = time.monotonic() + timeout
        while True:
            current = self.store.seq()
            if current != seen or time.monotonic() >= deadline:
                return current
            time.sleep(min(poll, max(deadline - time.monotonic(), 0.0)))

    def meta(self) -> dict[str, Any]:
        with self.store.read() as txn:
            return dict(txn.meta)

    # -- read helpers for front ends -------------------------------------------------------------
    def table_version(self, table: str) -> str:
        """An opaque token that changes exactly when ``table``'s contents change: a
        screen can skip re-reading 10,000 rows when it is unchanged."""
        return self.store.table_version(table)

    # -- audit ------------------------------------------------------------------------------
    def audit_head(self) -> AuditCursor:
        """The newest committed audit entry (not verified: cheap to poll)."""
        return self.store.audit_head()

    def audit_tail(self, count: int) -> AuditPage:
        """The last ``count`` entries, parsed, and the cursor after them."""
        return self.store.audit_tail(count)

    def audit_since(self, cursor: AuditCursor) -> AuditPage:
        """Entries after ``cursor`` and the new cursor (IntegrityError if the entry
        the cursor names was rewritten)."""
        return self.store.audit_since(cursor)

    def audit_lines(self, since: AuditCursor | None = None) -> Iterator[bytes]:
        """The log's raw lines, streamed (exports, reports, SIEM forwarding)."""
        return self.store.audit_lines(since)

    def audit_batches(self) -> Iterator[list[bytes]]:
        """The log's raw lines in large batches (the one-day report's fast path)."""
        return self.store.audit_batches()

    def verify_audit(self, *, incremental: bool = False,
                     progress: Progress | None = None) -> VerifyResult:
        """Every link and every signature of the log. A verified head is remembered:
        a reader is a witness too. ``incremental``: signatures only after this
        client's last verified checkpoint, a hash-only check of the lines before it."""
        return self.store.verify_audit(incremental=incremental, progress=progress)

    # -- operators ---------------------------------------------------------------------------
    def initialise(self, founders: Sequence[OperatorSpec], *, label: str = "vault",
                   kdf_params: kdf.KdfParams | None = None) -> list[Enrolment]:
        return self.services.operators.initialise(founders, label=label, kdf_params=kdf_params)

    def operators(self) -> list[Operator]:
        return self.services.operators.operators()

    def unlock(self, name: str, passphrase: str, code: str) -> Session:
        return self.services.operators.unlock(name, passphrase, code)

    def confirm_totp(self, session: Session, code: str) -> None:
        self.services.operators.confirm_totp(session, code)

    def add_operator(self, sessions: Sequence[Session], spec: OperatorSpec,
                     progress: OnProgress = None) -> Enrolment:
        return self.services.operators.add_operator(sessions, spec, progress)

    def suspend_operator(self, sessions: Sequence[Session], name: str,
                         reason: str = "") -> None:
        self.services.operators.suspend_operator(sessions, name, reason)

    def reactivate_operator(self, sessions: Sequence[Session], name: str) -> None:
        self.services.operators.reactivate_operator(sessions, name)

    def change_passphrase(self, name: str, old: str, code: str, new: str) -> None:
        self.services.factors.change_passphrase(name, old, code, new)

    def reset_totp(self, witness_session: Session, name: str, passphrase: str) -> Enrolment:
        return self.services.factors.reset_totp(witness_session, name, passphrase)

    def remove_operator(self, sessions: Sequence[Session], name: str,
                        progress: OnProgress = None) -> list[str]:
        return self.services.offboarding.remove_operator(sessions, name, progress)

    # -- credentials -------------------------------------------------------------------------
    def credentials(self) -> list[Credential]:
        return self.services.credentials.credentials()

    def credential(self, name: str) -> Credential:
        return self.services.credentials.credential(name)

    def add_credential(self, session: Session, spec: CredentialSpec) -> Credential:
        return self.services.credentials.add_credential(session, spec)

    def import_credentials(self, session: Session, specs: Iterable[CredentialSpec],
                           progress: OnProgress = None) -> list[Credential]:
        return self.services.credentials.import_credentials(session, specs, progress)

    # -- requests and checkouts --------------------------------------------------------------
    def checkout(self, req_id: str) -> Checkout:
        return self.services.requests.checkout(req_id)

    def checkouts(self, *, open_only: bool = False) -> list[Checkout]:
        return self.services.requests.checkouts(open_only=open_only)

    def active_map(self) -> dict[str, dict[str, Any]]:
        return self.services.requests.active_map()

    @staticmethod
    def due_at(req: dict[str, Any]) -> float | None:
        return Requests.due_at(req)

    def request(self, session: Session, cred_name: str, reason: str, ticket: str,
                duration: int) -> Checkout:
        return self.services.checkout.request(session, cred_name, reason, ticket, duration)

    def approve(self, session: Session, req_id: str) -> Checkout:
        return self.services.checkout.approve(session, req_id)

    def deny(self, session: Session, req_id: str, reason: str) -> Checkout:
        return self.services.checkout.deny(session, req_id, reason)

    def cancel(self, session: Session, req_id: str) -> Checkout:
        return self.services.checkout.cancel(session, req_id)

    def reveal(self, session: Session, req_id: str) -> SecretValue:
        return self.services.checkout.reveal(session, req_id)

    def clear_requests(self, session: Session, requester: str, reason: str
                       ) -> tuple[list[str], list[str]]:
        return self.services.checkout.clear_requests(session, requester, reason)

    def redisplay(self, session: Session, req_id: str) -> SecretValue:
        return self.services.holder.redisplay(session, req_id)

    def extend_lease(self, session: Session, req_id: str, extra: int) -> Checkout:
        return self.services.holder.extend_lease(session, req_id, extra)

    # -- rotation ----------------------------------------------------------------------------
    def checkin(self, session: Session, req_id: str) -> RotationResult:
        return self.services.rotation.checkin(session, req_id)

    def rotate(self, session: Session, cred_id: str, req_id: str | None, reason: str, *,
               checkin: bool = False) -> RotationResult:
        return self.services.rotation.rotate(session, cred_id, req_id, reason,
                                             checkin=checkin)

    def rotate_many(self, session: Session, names: Sequence[str],
                    progress: OnProgress = None) -> list[RotationResult]:
        return self.services.rotation.rotate_many(session, names, progress)

    def reveal_apply(self, session: Session, cred_name: str) -> SecretValue:
        return self.services.finishing.reveal_apply(session, cred_name)

    def confirm_applied(self, session: Session, cred_name: str) -> RotationResult:
        return self.services.finishing.confirm_applied(session, cred_name)

    def reconcile(self, session: Session, cred_name: str, *, fresh: bool = False
                  ) -> RotationResult:
        return self.services.finishing.reconcile(session, cred_name, fresh=fresh)

    def pending_rotations(self) -> list[tuple[str, str, int]]:
        return self.services.finishing.pending_rotations()

    def flagged(self) -> list[dict[str, Any]]:
        return self.services.rotation.flagged()

    def can_rotate_for(self, session: Session, req: dict[str, Any]) -> bool:
        return self.services.rotation.can_rotate_for(session, req)

    def connector_for(self, cred: dict[str, Any], roster: Roster) -> Connector:
        return self.services.rotation.connector_for(cred, roster)

    # -- reviews -----------------------------------------------------------------------------
    def review_queue(self) -> list[ReviewItem]:
        return self.services.reviews.review_queue()

    def review(self, session: Session, item_id: str, outcome: str, note: str) -> ReviewItem:
        return self.services.reviews.review(session, item_id, outcome, note)

    # -- onboarding secrets ------------------------------------------------------------------
    def issue_onboarding(self, session: Session, identity: str, reason: str, ticket: str,
                         channel: str, expires_in: int = DEFAULT_EXPIRY,
                         connector: str = "generated", target: str | None = None,
                         options: dict[str, str] | None = None,
                         template: str | None = None) -> Checkout:
        return self.services.onboarding.issue_onboarding(
            session, identity, reason, ticket, channel, expires_in, connector, target,
            options, template)

    def onboarding_secrets(self) -> list[Checkout]:
        return self.services.onboarding.onboarding_secrets()

    def activate_onboarding(self, session: Session, onb_id: str) -> Checkout:
        return self.services.onboarding.activate_onboarding(session, onb_id)

    def expire_onboarding(self, session: Session, onb_id: str) -> None:
        self.services.onboarding.expire_onboarding(session, onb_id)

    def revoke_onboarding_manually(self, session: Session, onb_id: str, note: str
                                   ) -> Checkout:
        return self.services.onboarding.revoke_onboarding_manually(session, onb_id, note)

    # -- the emergency kit -------------------------------------------------------------------
    def active_kit(self) -> dict[str, Any] | None:
        return self.services.kit.active_kit()

    def issue_kit(self, sessions: Sequence[Session], progress: OnProgress = None) -> KitIssued:
        return self.services.kit.issue_kit(sessions, progress)

    def kit_part(self, session: Session) -> str:
        return self.services.kit.kit_part(session)

    def burn_kit(self, session: Session, why: str = "exposed") -> list[str]:
        return self.services.kit.burn_kit(session, why)

    def kit_exposure(self) -> list[str]:
        return self.services.kit.kit_exposure()

    def kit_sweep(self, session: Session, progress: OnProgress = None
                  ) -> list[RotationResult]:
        return self.services.kit.kit_sweep(session, progress)

    def emergency_reveal(self, session: Session, cred_name: str, code: str, reason: str,
                         ticket: str, duration: int) -> tuple[Checkout, SecretValue]:
        return self.services.kit.emergency_reveal(session, cred_name, code, reason, ticket,
                                                  duration)

    # -- drills ------------------------------------------------------------------------------
    def drill(self, session: Session, cred_name: str | None = None) -> DrillResult:
        return self.services.drill.drill(session, cred_name)

    def kit_drill(self, session: Session, check_code: str) -> DrillResult:
        return self.services.drill.kit_drill(session, check_code)

    # -- notifications -----------------------------------------------------------------------
    def attach_notifications(self) -> None:
        self.services.notify.attach_notifications()

    def notify_settings(self) -> NotifySettings | None:
        return self.services.notify.notify_settings()

    def notify_sweep(self, signer: Signer | None, *, background: bool = True) -> None:
        self.services.notify.notify_sweep(signer, background=background)

    def notify_test(self, actor: str = "") -> dict[str, str | None]:
        return self.services.notify.notify_test(actor)

    def notify_alerts(self) -> list[Alert]:
        return self.services.notify.notify_alerts()

    def queued_notifications(self) -> list[dict[str, Any]]:
        return self.services.notify.queued_notifications()

    def wait_notifications(self, timeout: float = 30.0) -> None:
        self.services.notify.wait_notifications(timeout)

    # -- time-driven work and alerts ---------------------------------------------------------
    def sweep(self, session: Session) -> SweepReport:
        return self.services.sweep.sweep(session)

    def sweep_failures(self) -> dict[str, dict[str, Any]]:
        return self.services.sweep.sweep_failures()

    def alerts(self) -> list[Alert]:
        """What every operator's screen must show until it is dealt with."""
        return self.services.alerts.alerts()
