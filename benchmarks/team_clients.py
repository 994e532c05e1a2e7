"""The client processes of the team-mode group (benchmarks/team.py), one machine each.

``python -m benchmarks.team_clients ROLE`` with one JSON line of settings on
stdin; each process has its own HOME and GLASSKEY_STATE_DIR (the caller sets
them), talks to the vault only through PostgreSQL, and uses the real clock:

* ``watch``   (machine A): requests a credential, then waits on
  ``store.wait_for_change`` (LISTEN/NOTIFY) and re-reads the request until it
  shows approved; prints the wall-clock instant it saw the approval.
* ``approve`` (machine B): approves the request it is told about and prints
  the wall-clock instant its SQL COMMIT returned (taken in the store's
  post-commit step, before anything else the call does afterwards).
* ``checkout``: one of the concurrent clients; random checkouts until a
  deadline, every outcome counted.

Both ends read ``time.time()`` on the same machine, so commit -> visible is
one clock's difference.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

from glasskey.core import totp
from glasskey.core.vault import Vault

from benchmarks.common import op_passphrase, op_seed, peak_rss_mib

OPS = ("request", "approve", "reveal", "checkin")


def _say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _hear() -> dict[str, Any]:
    line = sys.stdin.readline()
    return json.loads(line) if line.strip() else {"stop": True}


def _vault(cfg: dict[str, Any]) -> Vault:
    return Vault(cfg["url"], allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")


def _unlock(vault: Vault, name: str) -> Any:
    return vault.unlock(name, op_passphrase(name), totp.code_at(op_seed(name), time.time()))


def watch(cfg: dict[str, Any]) -> None:
    vault = _vault(cfg)
    session = _unlock(vault, cfg["requester"])
    store: Any = vault.store
    _say({"ready": True})
    while not (msg := _hear()).get("stop"):
        req = vault.request(session, msg["credential"], "notify benchmark", "INC-13", 900)
        seen = store.seq()
        _say({"rid": req.id})
        wakeups, deadline = 0, time.time() + float(cfg.get("timeout", 10))
        visible = None
        while time.time() < deadline:
            seen = store.wait_for_change(seen, max(0.01, deadline - time.time()))
            wakeups += 1
            if vault.checkout(req.id).state == "approved":
                visible = time.time()
                break
        _say({"visible": visible, "wakeups": wakeups})
        try:
            vault.cancel(session, req.id)  # keep the vault tidy (untimed)
        except Exception as exc:  # reported, not fatal
            _say({"note": f"cancel: {type(exc).__name__}"})
    _say({"peak_rss_mib": peak_rss_mib()})


def approve(cfg: dict[str, Any]) -> None:
    vault = _vault(cfg)
    session = _unlock(vault, cfg["approver"])
    store: Any = vault.store
    commits: list[float] = []
    saw = store._saw

    def stamped(txn: Any) -> None:  # PostgresStore calls _saw right after COMMIT returns
        if getattr(txn, "write", False) and any(
                r[1] == "checkout.approved" for r in getattr(txn, "recorded", ())):
            commits.append(time.time())
        saw(txn)

    store._saw = stamped
    _say({"ready": True})
    while not (msg := _hear()).get("stop"):
        commits.clear()
        vault.approve(session, msg["rid"])
        _say({"commit": commits[-1] if commits else None})
    _say({"peak_rss_mib": peak_rss_mib()})


def checkout(cfg: dict[str, Any]) -> None:
    """Random checkouts from ``start`` until ``until`` (wall clock, sent once all are
    ready); latencies and outcomes."""
    vault = _vault(cfg)
    rng = random.Random(cfg["seed"])
    creds: list[str] = cfg["credentials"]
    requester = _unlock(vault, cfg["requester"])
    approver = _unlock(vault, cfg["approver"])
    _say({"ready": True})
    cfg.update(_hear())  # the common start and end, once every client is ready
    time.sleep(max(0.0, float(cfg["start"]) - time.time()))
    times: dict[str, list[float]] = {op: [] for op in OPS}
    done: list[dict[str, Any]] = []  # every operation this client saw succeed
    refused: dict[str, int] = {}
    completed = 0
    while time.time() < float(cfg["until"]):
        cred = rng.choice(creds)
        rid = None
        for op in OPS:
            t0 = time.perf_counter()
            try:
                if op == "request":
                    rid = vault.request(requester, cred, "load benchmark", "INC-13", 900).id
                elif op == "approve":
                    vault.approve(approver, rid)  # type: ignore[arg-type]
                elif op == "reveal":
                    if not vault.reveal(requester, rid):  # type: ignore[arg-type]
                        raise RuntimeError("empty secret")
                else:
                    vault.checkin(requester, rid)  # type: ignore[arg-type]
            except Exception as exc:  # a refusal is a result here
                kind = f"{op}: {type(exc).__name__}"
                refused[kind] = refused.get(kind, 0) + 1
                if rid is not None and op != "checkin":
                    try:
                        vault.cancel(requester, rid)
                    except Exception:  # best effort
                        pass
                break
            times[op].append(time.perf_counter() - t0)
            done.append({"op": op, "rid": rid, "credential": cred})
        else:
            completed += 1
    _say({"times": times, "done": done, "refused": refused, "completed": completed,
          "peak_rss_mib": peak_rss_mib()})


#: The audit event each client-reported success must have left behind.
EVENT_OF = {"request": "checkout.requested", "approve": "checkout.approved",
            "reveal": "checkout.revealed", "checkin": "checkout.checked-in"}


def check_log(lines: list[bytes], done: list[dict[str, Any]]) -> dict[str, Any]:
    """Lost updates and double redemptions, from the (verified) audit log alone.

    Lost: a success a client reported that has no entry. Double redemption: a
    request revealed twice, or a credential revealed under a second request
    while the first was neither checked in nor expired. Also: a reveal with no
    approval before it in the log.
    """
    seen: set[tuple[str, str]] = set()
    reveals: dict[str, int] = {}
    unapproved = 0
    holder: dict[str, str] = {}
    overlaps = 0
    for raw in lines:
        entry = json.loads(raw)
        event, rid = entry.get("event", ""), entry.get("subject", "")
        cred = (entry.get("details") or {}).get("credential")
        seen.add((event, rid))
        if event == "checkout.revealed":
            reveals[rid] = reveals.get(rid, 0) + 1
            unapproved += ("checkout.approved", rid) not in seen
            if cred in holder and holder[cred] != rid:
                overlaps += 1
            holder[cred] = rid
        elif event in ("checkout.checked-in", "checkout.expired") and holder.get(cred) == rid:
            del holder[cred]
    lost = [d for d in done if (EVENT_OF[d["op"]], d["rid"]) not in seen]
    return {"reported_successes": len(done), "lost_updates": len(lost),
            "double_reveals": sum(1 for n in reveals.values() if n > 1),
            "overlapping_checkouts": overlaps, "unapproved_reveals": unapproved,
            "reveals_in_log": sum(reveals.values())}


ROLES = {"watch": watch, "approve": approve, "checkout": checkout}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.stdin.readline()))
