"""Notifications, the vault side: queue deliveries in the commit, send them after it.

core/notify.py builds payloads and talks to the channels; this service ties
them to the store (``Store.before_commit`` / ``Store.on_unlock``), keeps the
delivery queue in the vault, retries it, warns holders whose lease is ending
and reports what keeps failing (``alerts``). The module docstring of
core/notify.py describes the whole design.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from glasskey.core import config
from glasskey.core.audit import Signer
from glasskey.core.clock import iso
from glasskey.core.context import Service, VaultContext
from glasskey.core.errors import GlasskeyError
from glasskey.core.models import Alert, AlertKind
from glasskey.core.notify import (
    EVENTS,
    LEASE_WARNING,
    OUTBOX,
    RETRY_FIRST,
    RETRY_MAX,
    Delivery,
    build_payload,
    deliver_all,
    deliveries_for,
    payload_from_entry,
    plain,
)
from glasskey.core.storage.interface import Store, Transaction

#: Seconds (beyond the delivery budget) a committing process has to deliver what
#: it queued before a sweep or the relay may deliver it instead.
IN_FLIGHT_GRACE = 30.0


def _enqueue(txn: Transaction, items: list[Delivery], next_at: float) -> None:
    """Put deliveries into the vault's queue in this transaction (idempotent by id)."""
    if not items:
        return
    doc = txn.table("meta").get(OUTBOX) or {}
    queue: dict[str, Any] = dict(doc.get("items") or {})
    at = txn.entry_time(strict=False)
    for d in items:
        queue.setdefault(d.id, {
            "id": d.id, "channel": d.channel, "payload": d.payload, "attempts": 0,
            "first": at, "last": None, "next_at": next_at, "reason": "", "audited": True})
    txn.table("meta").put(OUTBOX, {**doc, "items": queue})


@dataclass
class _Batch:
    deliveries: list[Delivery] = field(default_factory=list)
    signer: Signer | None = None


class NotifyService(Service):
    """Turns committed events into deliveries; queues, retries and reports failures."""

    def __init__(self, ctx: VaultContext) -> None:
        super().__init__(ctx)
        #: (monotonic time read, settings): glasskey.toml is re-read every few seconds.
        self.settings_cache: tuple[float, config.NotifySettings | None] | None = None
        self._threads: list[threading.Thread] = []
        self._pending: dict[int, tuple[config.NotifySettings, _Batch]] = {}

    def notify_settings(self) -> config.NotifySettings | None:
        """``[notify]`` of glasskey.toml (re-read at most every few seconds)."""
        now = time.monotonic()
        cached = self.settings_cache
        if cached is not None and now - cached[0] < 5:
            return cached[1]
        settings = config.notify_settings(config.load(self.ctx.root))
        self.settings_cache = (now, settings)
        return settings

    def attach_notifications(self) -> None:
        """Queue (in the commit) and deliver (after it) every event of this store."""
        self.store.before_commit = self._queue_in_commit
        self.store.on_unlock = self._committed

    def _queue_in_commit(self, txn: Transaction) -> None:
        """Store.before_commit: the deliveries go into the vault with the events they
        announce (one commit), so a process killed before delivering loses none: a
        later sweep or the relay finds them once their grace period has passed."""
        if not any(event in EVENTS for _, event, _, _, _ in txn.recorded):
            return
        try:
            settings = self.notify_settings()
        except GlasskeyError:
            return  # shown by alerts (NOTIFY MISCONFIGURED)
        if settings is None:
            return
        vault_id = str(txn.meta["vault_id"])
        batch = _Batch()
        at = txn.entry_time(strict=False)
        for signer, event, subject, details, seq in txn.recorded:
            payload = payload_from_entry(txn, vault_id, event, subject, details, signer.name,
                                         seq, at)
            if payload is None:
                continue
            batch.deliveries += deliveries_for(settings, vault_id, f"seq:{seq}", payload)
            if signer.key is not None:
                batch.signer = signer
        if not batch.deliveries:
            return
        _enqueue(txn, batch.deliveries, at + settings.budget + IN_FLIGHT_GRACE)
        self._pending[id(txn)] = (settings, batch)

    def _committed(self, txn: Transaction) -> None:
        """Store.on_unlock: the lock is released and the transaction committed."""
        found = self._pending.pop(id(txn), None)
        if found is None:
            return
        settings, batch = found
        self._start(lambda: self._send_and_settle(settings, batch.deliveries, batch.signer,
                                                  queued=True))

    def _start(self, work: Callable[[], object]) -> None:
        """Run ``work`` on a non-daemon thread: the caller returns now, the process
        waits for it (bounded) before exiting."""
        threads = self._threads
        threads[:] = [t for t in threads if t.is_alive()]

        def guarded() -> None:
            try:
                work()
            except Exception:  # noqa: S110 - best effort; the event is in the audit log
                pass

        thread = threading.Thread(target=guarded, name="glasskey-notify", daemon=False)
        threads.append(thread)
        thread.start()

    def wait_notifications(self, timeout: float = 30.0) -> None:
        """Wait for this process's deliveries in flight (tests, the relay, the TUI's exit)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _side_store(self) -> Store:
        """A store of its own for the delivery thread: its own lock handle, so the
        thread waits for the vault lock like another process would."""
        store = self.store.twin()
        store.now = self.ctx.clock.now
        return store

    def _send_and_settle(self, settings: config.NotifySettings, items: list[Delivery],
                         signer: Signer | None, queued: bool) -> dict[str, str | None]:
        results = deliver_all(settings, items)
        failed = {i: why for i, why in results.items() if why is not None}
        if failed or queued:
            self._settle(items, results, signer)
        return results

    def _settle(self, items: list[Delivery], results: dict[str, str | None],
                signer: Signer | None) -> None:
        """Queue failures, drop deliveries that went out, audit what is unaudited."""
        by_id = {d.id: d for d in items}
        store = self._side_store()
        with store.transaction() as txn:
            doc = txn.table("meta").get(OUTBOX) or {}
            queue: dict[str, Any] = dict(doc.get("items") or {})
            at = txn.entry_time(strict=False)
            changed = False
            for ident, why in results.items():
                rec = queue.get(ident)
                if why is None:
                    if rec is not None:
                        del queue[ident]
                        changed = True
                        if signer is not None and int(rec.get("attempts", 0)) > 0:
                            txn.record(signer, "notify.delivered", ident, {
                                "event": rec["payload"]["event"], "channel": rec["channel"],
                                "request": rec["payload"]["request"],
                                "attempts": int(rec["attempts"]) + 1})
                    continue
                d = by_id[ident]
                attempts = int((rec or {}).get("attempts", 0)) + 1
                wait = min(RETRY_MAX, RETRY_FIRST * 2 ** (attempts - 1))
                queue[ident] = {
                    "id": ident, "channel": d.channel, "payload": d.payload,
                    "attempts": attempts, "first": float((rec or {}).get("first", at)),
                    "last": at, "next_at": at + wait, "reason": plain(why, 200),
                    "audited": False,
                }
                changed = True
            if signer is not None:
                for rec in queue.values():
                    if not rec.get("audited"):
                        txn.record(signer, "notify.failed", rec["id"], {
                            "event": rec["payload"]["event"], "channel": rec["channel"],
                            "request": rec["payload"]["request"], "reason": rec["reason"],
                            "attempts": rec["attempts"]})
                        rec["audited"] = True
                        changed = True
            if changed:
                txn.table("meta").put(OUTBOX, {**doc, "items": queue})

    # -- retry, lease warnings ----------------------------------------------------------
    def notify_sweep(self, signer: Signer | None, *, background: bool = True) -> None:
        """Retry due queued deliveries, warn holders whose lease ends within 5 minutes,
        audit unaudited failures (when ``signer``). Run by every authenticated
        command's sweep (in the background) and by ``glasskey relay``."""
        try:
            settings = self.notify_settings()
        except GlasskeyError:
            return
        if settings is None:
            return
        if background:
            self._start(lambda: self._sweep_now(settings, signer))
        else:
            self._sweep_now(settings, signer)

    def _sweep_now(self, settings: config.NotifySettings, signer: Signer | None) -> None:
        local = self.now()
        store = self._side_store()
        with store.read() as txn:
            doc = txn.table("meta").get(OUTBOX) or {}
            queue = dict(doc.get("items") or {})
            warned = dict(doc.get("warned") or {})
            vault_id = str(txn.meta["vault_id"])
            ending = []
            for entry in txn.table("active").values():
                lease = entry.get("lease_expires")
                if entry.get("state") == "checked-out" and lease is not None \
                        and float(lease) - LEASE_WARNING <= local < float(lease) \
                        and entry["request"] not in warned:
                    req = txn.table("requests").get(entry["request"]) or {}
                    ending.append((entry["request"], float(lease), req))
        due = [r for r in queue.values() if float(r.get("next_at", 0)) <= local]
        unaudited = signer is not None and any(not r.get("audited") for r in queue.values())
        if not (due or ending or unaudited):
            return
        fresh: list[Delivery] = []
        with store.transaction() as txn:  # claim: nobody else retries these meanwhile
            doc = txn.table("meta").get(OUTBOX) or {}
            queue = dict(doc.get("items") or {})
            warned = {k: v for k, v in (doc.get("warned") or {}).items()
                      if (txn.table("active").get(str(v.get("cred_id", ""))) or {}
                          ).get("request") == k}  # forget leases that ended
            at = txn.entry_time(strict=False)
            claimed = []
            for rec in queue.values():
                if float(rec.get("next_at", 0)) <= local:
                    rec["next_at"] = at + settings.budget + RETRY_FIRST
                    claimed.append(Delivery(rec["id"], rec["channel"], rec["payload"]))
            for req_id, lease, req in ending:
                if req_id in warned:
                    continue
                warned[req_id] = {"lease": lease, "cred_id": req.get("cred_id", "")}
                payload = build_payload(
                    vault_id, "lease.ending", request=req_id,
                    credential=str(req.get("cred_name", "")),
                    requester=str(req.get("requester", "")), reason=str(req.get("reason", "")),
                    ticket=str(req.get("ticket", "")), expires=lease,
                    to={"operator": str(req.get("requester", ""))}, when=at)
                fresh += deliveries_for(settings, vault_id, f"lease:{req_id}:{lease}", payload)
            txn.table("meta").put(OUTBOX, {**doc, "items": queue, "warned": warned})
            _enqueue(txn, fresh, at + settings.budget + IN_FLIGHT_GRACE)
        items = claimed + fresh
        results = deliver_all(settings, items) if items else {}
        self._settle(items, results, signer)

    def queued_notifications(self) -> list[dict[str, Any]]:
        """Every delivery in the vault's queue: failed ones, and those in flight."""
        with self.store.read() as txn:
            doc = txn.table("meta").get(OUTBOX) or {}
        return sorted((dict(r) for r in (doc.get("items") or {}).values()),
                      key=lambda r: (float(r.get("first", 0)), str(r["id"])))

    def notify_alerts(self) -> list[Alert]:
        out = []
        try:
            self.notify_settings()
        except GlasskeyError as exc:  # otherwise every delivery would be skipped silently
            out.append(Alert(AlertKind.NOTIFY_MISCONFIGURED, None, None,
                             f"NOTIFY MISCONFIGURED: {exc}; no notification is sent"))
        now = self.now()
        for rec in self.queued_notifications():
            if not rec.get("attempts") and float(rec.get("next_at", 0)) > now:
                continue  # in flight: its process is delivering it right now
            p = rec["payload"]
            what = p.get("request") or p.get("credential") or ""
            out.append(Alert(
                AlertKind.NOTIFY_FAILING, p.get("credential") or None, p.get("request") or None,
                f"NOTIFY FAILING: {p.get('event')} {what} via {rec['channel']} "
                f"({rec['id']}): {rec.get('reason')}; {rec.get('attempts')} attempt(s), "
                f"next after {iso(float(rec.get('next_at', 0)))}"))
        return out

    def notify_test(self, actor: str = "") -> dict[str, str | None]:
        """Send a test event to every configured channel now; channel -> None or why not."""
        settings = self.notify_settings()
        if settings is None:
            return {}
        vault_id = self.vault_id
        stamp = f"test:{time.time_ns()}"
        payload = build_payload(vault_id, "notify.test", request="", credential="",
                                requester="", actor=actor, detail="a test of the "
                                "notification channels", to={"role": "everyone"})
        items = deliveries_for(settings, vault_id, stamp, payload)
        results = deliver_all(settings, items)
        return {d.channel: results[d.id] for d in items}
