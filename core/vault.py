"""The vault: one object the CLI and the TUI share, composed of the services.

``Vault`` = operators (enrol, unlock) + credentials (add, import) + checkout
(request, approve, deny, cancel, reveal) + rotation (check-in, reconcile),
over one store, one clock and one source of randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core import config as site_config
from core import witness
from core.audit import Head, VerifyResult, verify_log
from core.clock import Clock, Random
from core.emergency import EmergencyOps
from core.errors import GlasskeyError
from core.models import CheckoutState
from core.offboarding import OffboardingOps
from core.onboarding import OnboardingOps
from core.operators import OperatorOps
from core.redisplay import HolderOps
from core.rotation import RotationResult
from core.session import Session

S = CheckoutState


@dataclass(frozen=True)
class SweepReport:
    expired: list[str]
    overdue: list[str]
    rotated: list[RotationResult]
    errors: list[str]


class Vault(OperatorOps, OnboardingOps, EmergencyOps, OffboardingOps, HolderOps):
    def __init__(self, root: Path, clock: Clock | None = None, rng: Random | None = None,
                 *, lock_timeout: float = 10.0) -> None:
        super().__init__(root, clock, rng, lock_timeout=lock_timeout)
        self._config: dict[str, object] | None = None

    def _site(self) -> dict[str, object]:
        if self._config is None:
            self._config = site_config.load(self.root)
        return self._config

    def site_config(self, connector: str) -> dict[str, str]:
        return site_config.connector_section(self._site(), connector)

    def site_setting(self, section: str, key: str) -> str | None:
        value = self._site().get(section)
        if isinstance(value, dict) and key in value:
            return str(value[key])
        return None

    # -- read helpers for front ends -------------------------------------------------------------
    @property
    def audit_path(self) -> Path:
        return self.store.audit.path

    def table_version(self, table: str) -> str:
        """An opaque token that changes exactly when ``table``'s contents change.

        The large tables are content-addressed shards, so the manifest's digests
        are such a token; a screen can skip re-reading 10,000 rows when it is
        unchanged.
        """
        with self.store.read() as txn:
            manifest = txn.state.get("manifest", {}).get(table) or {}
        return ",".join(f"{k}={v}" for k, v in sorted(manifest.items()))

    # -- audit ------------------------------------------------------------------------------
    def verify_audit(self) -> VerifyResult:
        # Read the state without the open-time witness check: verification must
        # report *where* the log went wrong, not just refuse to look at it.
        meta = self.store._read_state()["meta"]["vault"]
        head = Head.from_doc(meta.get("audit"))
        vault_id = str(meta["vault_id"])
        return verify_log(self.store.audit, state_head=head, witness=witness.load(vault_id))

    # -- time-driven work ---------------------------------------------------------------------
    def sweep(self, session: Session) -> SweepReport:
        """Expire stale requests, notice overdue leases, rotate what is due.

        Run by every authenticated command and periodically by the TUI, so
        that expiry happens at the next opportunity even with no process of
        the holder running. Leases of this session's own checkouts are checked
        in; other holders' overdue leases are flagged (audited once) and, for
        credentials the vault can rotate without the holder, rotated.
        """
        expired: list[str] = []
        overdue: list[str] = []
        rotate: list[tuple[str, str, bool]] = []
        now = self.now()
        expired.extend(self.expire_onboarding(session))
        with self.store.transaction() as txn:
            for cred_id, entry in txn.table("active").items():
                req = txn.sharded("requests").get(entry["request"])
                if req is None or req.get("kind") == "onboarding":
                    continue
                if req["state"] in (S.REQUESTED, S.APPROVED):
                    if self._expire_if_due(txn, req, session):
                        expired.append(req["id"])
                elif req["state"] == S.CHECKED_OUT and now >= float(req["lease_expires"]):
                    mine = req["requester"] == session.name
                    if not req.get("overdue_noted"):
                        req["overdue_noted"] = now
                        self._save(txn, req)
                        txn.record(session.signer, "lease.expired", req["id"], {
                            "credential": req["cred_name"], "holder": req["requester"],
                            "lease_expires": req["lease_expires"],
                        })
                    overdue.append(req["id"])
                    cred = txn.sharded("credentials").get(cred_id)
                    connector = self.connector_for(cred) if cred is not None else None
                    can_rotate = mine or (connector is not None and (
                        connector.vault_is_source_of_truth or connector.needs_person))
                    if can_rotate:
                        rotate.append((cred_id, req["id"], mine))
                elif req["state"] == S.ROTATING:
                    rotate.append((cred_id, req["id"], req["requester"] == session.name))
        rotated: list[RotationResult] = []
        errors: list[str] = []
        for cred_id, req_id, mine in rotate:
            try:
                if mine:
                    rotated.append(self.checkin(session, req_id))
                else:
                    rotated.append(self._expire_lease(session, cred_id, req_id))
            except GlasskeyError as exc:
                errors.append(f"{req_id}: {exc}")
        return SweepReport(expired, overdue, rotated, errors)

    def _expire_lease(self, session: Session, cred_id: str, req_id: str) -> RotationResult:
        with self.store.transaction() as txn:
            req = self._request_doc(txn, req_id)
            if req["state"] == S.CHECKED_OUT:
                req["ended_at"] = self.now()
                req["end_reason"] = "lease-expired"
                self._save(txn, req)
        return self.rotate(session, cred_id, req_id, reason="lease-expired")
