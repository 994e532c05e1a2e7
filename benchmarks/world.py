"""Building benchmark vaults through the core API, and caching them.

The large vault is made the way a site would make it: ``initialise`` with the
25 operators (Argon2id-wrapped keys at the vault's parameters), then one
``import_credentials`` of 10,000 credentials (25 HPKE-sealed shares each).

Its audit log is then filled to 1,000,000 entries with a synthetic but
realistic checkout history: request -> approve -> reveal -> check-in ->
rotate.intent -> rotate.commit cycles (and some denials and failed unlocks),
each entry built by ``core.audit.build_entry`` and signed with the real
Ed25519 key of the operator who acts, chained exactly as the vault chains
them. The matching closed request documents go into the ``requests`` table,
because a vault with a million audit entries also holds the ~160,000 checkouts
they describe. Lines are appended with ``AuditLog.append`` and the state's
audit head is set in the same store transaction, so the result verifies with
``Vault.verify_audit`` like any vault (checked at build time).

History timestamps lie in the past (the build starts its fake clock 120 days
before now), so that the CLI can later act on a copy with the real clock.

A cached vault is never modified: each mutating measurement works on a copy
whose immutable, content-addressed shard files are hard links and whose
``audit.jsonl`` and ``vault.json`` are real copies.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glasskey.core import totp
from glasskey.core.audit import SYSTEM_SIGNER, Head, build_entry
from glasskey.core.clock import FakeClock
from glasskey.core.credentials import CredentialSpec
from glasskey.core.crypto import kdf
from glasskey.core.models import Policy
from glasskey.core.operators import OperatorSpec
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.vault import Vault

from benchmarks.common import (
    CACHE,
    FAST_KDF,
    Scale,
    cache_key,
    cred_name,
    op_name,
    op_passphrase,
    op_roles,
    op_seed,
    read_json,
)

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
HISTORY_DAYS = 100
START_BEFORE_NOW = 120 * 86400


def log(msg: str) -> None:
    sys.stderr.write(f"  [{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def kdf_params(doc: dict[str, int], salt: bytes = b"glasskey-bench-salt!") -> kdf.KdfParams:
    return kdf.KdfParams(int(doc["memory_kib"]), int(doc["iterations"]), int(doc["lanes"]), salt)


def choose_kdf(scale: Scale) -> dict[str, int]:
    """The vault's default parameters (calibrated here), or tiny ones for --quick."""
    if scale.fast_kdf:
        return dict(FAST_KDF)
    p = kdf.calibrate()
    return {"memory_kib": p.memory_kib, "iterations": p.iterations, "lanes": p.lanes}


@dataclass
class World:
    """A vault on a fake clock, with every benchmark operator's TOTP seed known."""

    root: Path
    vault: Vault
    clock: FakeClock
    sessions: dict[str, Session] = field(default_factory=dict)

    def unlock(self, name: str) -> Session:
        self.clock.advance(30)  # each unlock consumes a TOTP step
        session = self.vault.unlock(name, op_passphrase(name),
                                    totp.code_at(op_seed(name), self.clock.now()))
        self.sessions[name] = session
        return session

    def s(self, name: str) -> Session:
        return self.sessions.get(name) or self.unlock(name)

    def operator_names(self) -> list[str]:
        return sorted(o.name for o in self.vault.operators())


def open_world(root: Path, clock_start: float) -> World:
    clock = FakeClock(clock_start)
    return World(root, Vault(root, clock, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1"), clock)


def found(root: Path, operators: int, params: dict[str, int], clock: FakeClock) -> World:
    vault = Vault(root, clock, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
    specs = [OperatorSpec(op_name(i), op_roles(i), op_passphrase(op_name(i)),
                          op_seed(op_name(i))) for i in range(operators)]
    vault.initialise(specs, label="bench", kdf_params=kdf_params(params))
    return World(root, vault, clock)


def credential_specs(count: int, rng: random.Random) -> list[CredentialSpec]:
    """Half given values (a migration brings existing secrets), half generated.

    Break-glass and batch accounts only: onboarding secrets are issued one at a
    time through their own path and are never checked out.
    """
    specs = []
    kinds = ("break-glass", "break-glass", "batch", "break-glass", "batch")
    for i in range(count):
        secret = None
        if i % 2 == 0:
            secret = SecretValue("".join(rng.choice(ALPHABET) for _ in range(24)))
        specs.append(CredentialSpec(cred_name(i), kind=kinds[i % len(kinds)],
                                    connector="generated", secret=secret,
                                    target=f"host-{i % 97}.example.internal",
                                    policy=Policy()))
    return specs


# -- synthetic history ---------------------------------------------------------------------------
def _rid(rng: random.Random) -> str:
    return "r" + "".join(rng.choice(ALPHABET) for _ in range(10))


def fill_history(world: World, target_entries: int,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Append signed checkout cycles until the log holds ``target_entries``; see module doc."""
    vault = world.vault
    names = world.operator_names()
    for name in names:
        world.s(name)
    sessions = world.sessions
    ops = {o.name: o for o in vault.operators()}
    creds = [(c.id, c.name) for c in vault.credentials()]
    rng = random.Random(20240601)
    t = world.clock.now()
    end = t + HISTORY_DAYS * 86400
    requests: list[dict[str, Any]] = []
    cycles = denied = failures = 0
    with vault.store.transaction() as txn:
        head: Head = txn.head
        remaining = target_entries - head.seq
        step = (end - t) / max(remaining, 1)
        log_ = vault.store.audit
        chunk: list[bytes] = []
        chunk_start = head.offset

        def emit(session: Session | None, event: str, subject: str,
                 details: dict[str, Any]) -> None:
            nonlocal head, t, chunk, chunk_start
            t += step
            signer = session.signer if session is not None else SYSTEM_SIGNER
            line, head = build_entry(head, signer, event, subject, details, t)
            chunk.append(line)
            if len(chunk) >= 20_000:
                log_.append(chunk, chunk_start)
                chunk_start = head.offset
                chunk = []
                if progress:
                    progress(head.seq, target_entries)

        versions: dict[str, int] = {}
        while head.seq < target_entries - 7:
            roll = rng.random()
            if roll < 0.02:
                who = rng.choice(names)
                failures += 1
                emit(None, "auth.failed", who, {"failures": 1, "why": "credentials",
                                                "locked_for": 0})
                continue
            cred_id, cname = rng.choice(creds)
            requester, approver = rng.sample(names, 2)
            rs, as_ = sessions[requester], sessions[approver]
            rid = _rid(rng)
            version = versions.get(cred_id, 1)
            duration = rng.choice((900, 1800, 3600, 7200))
            reason = rng.choice(("outage", "batch run", "incident response", "migration"))
            ticket = f"INC-{rng.randrange(10_000, 99_999)}"
            created = t + step
            emit(rs, "checkout.requested", rid, {
                "credential": cname, "reason": reason, "ticket": ticket,
                "duration": duration, "version": version})
            req: dict[str, Any] = {
                "id": rid, "cred_id": cred_id, "cred_name": cname, "requester": requester,
                "requester_id": ops[requester].id, "reason": reason, "ticket": ticket,
                "duration": duration, "created": created, "state": "closed", "needed": 1,
                "policy": Policy().to_doc(), "approvals": [], "version": version,
            }
            if roll < 0.07:
                denied += 1
                emit(as_, "checkout.denied", rid, {"credential": cname, "reason": "not needed"})
                req.update(denied_by=approver, deny_reason="not needed",
                           closed_reason="denied", ended_at=t)
                requests.append(req)
                continue
            cycles += 1
            expires = float(int(t + 900))
            emit(as_, "checkout.approved", rid, {
                "credential": cname, "requester": requester, "expires": expires,
                "approvals": 1, "needed": 1})
            req["approvals"] = [{"approver": approver, "approver_id": ops[approver].id,
                                 "at": t, "expires": expires, "grant": None}]
            emit(rs, "checkout.revealed", rid, {
                "credential": cname, "version": version, "lease_expires": t + duration,
                "approvers": [approver]})
            revealed = t
            emit(rs, "checkout.checked-in", rid, {
                "credential": cname, "held_for": int(rng.uniform(60, duration)),
                "by": requester})
            emit(rs, "rotate.intent", cname, {
                "from_version": version, "to_version": version + 1, "connector": "generated",
                "reason": "checkin", "request": rid})
            emit(rs, "rotate.commit", cname, {
                "version": version + 1, "connector": "generated", "request": rid})
            versions[cred_id] = version + 1
            req.update(revealed_at=revealed, lease_expires=revealed + duration, ended_at=t,
                       end_reason="checkin", checked_in_by=requester,
                       rotation={"outcome": "committed", "version": version + 1, "at": t},
                       review={"status": "pending"}, closed_reason="checkin")
            requests.append(req)
        while head.seq < target_entries:
            failures += 1
            emit(None, "auth.failed", rng.choice(names),
                 {"failures": 1, "why": "credentials", "locked_for": 0})
        if chunk:
            log_.append(chunk, chunk_start)
        log(f"history: {head.seq} entries, {len(requests)} closed requests; writing tables")
        table = txn.table("requests")
        for req in requests:
            table.put(req["id"], req)
        txn.head = head
        txn._start_offset = head.offset
        txn.set_meta(txn.meta)
    world.clock.set(t + 60)
    if progress:
        progress(target_entries, target_entries)
    return {"entries": target_entries, "requests": len(requests), "cycles": cycles,
            "denied": denied, "auth_failures": failures}


# -- cache ------------------------------------------------------------------------------------------
def cache_dir(scale: Scale) -> Path:
    return CACHE / scale.name


def cache_meta(scale: Scale) -> dict[str, Any] | None:
    """The cache's description if it is complete and was built by the current core."""
    path = cache_dir(scale) / "meta.json"
    if not path.exists():
        return None
    meta = read_json(path)
    if meta.get("key") != cache_key() or meta.get("scale") != scale.to_doc():
        return None
    if not (cache_dir(scale) / "large" / "vault.json").exists():
        return None
    if not (cache_dir(scale) / "small" / "vault.json").exists():
        return None
    return dict(meta)


def work_copy(src: Path, dest: Path) -> Path:
    """A private copy of a cached vault (shards hard-linked: they are immutable)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True, mode=0o700)
    (dest / "tables").mkdir(mode=0o700)
    for p in (src / "tables").iterdir():
        if p.name.endswith(".json"):
            os.link(p, dest / "tables" / p.name)
    for name in ("vault.json", "vault.json.bak", "audit.jsonl", "glasskey.toml"):
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    return dest


def drop_requests(world: World) -> None:
    """Variant: the same vault with an empty requests table (no checkout history)."""
    with world.vault.store.transaction() as txn:
        txn.state.get("manifest", {}).pop("requests", None)
        txn.state.get("groups", {}).pop("requests", None)  # schema 6: its group files
        txn.set_meta(txn.meta)


def fresh_client_state(base: Path) -> Path:
    """Each measurement is a new client: no witness checkpoint from earlier runs."""
    path = base / f"client-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir(parents=True)
    os.environ["GLASSKEY_STATE_DIR"] = str(path)
    return path


def start_clock() -> float:
    return float(int(time.time()) - START_BEFORE_NOW)
