"""Time-to-credential (issue 14): the outage loop, played on this machine, machine time only.

Per trial:

1. **request**: the requester's process commits a request (``Vault.request``);
2. **notified (HTTP)**: the committing process's notification reaches the
   approver's client, a *separate process* with its own ``GLASSKEY_STATE_DIR``
   that listens on a real local HTTP port (the webhook); **notified (SMTP)**:
   the same event reaches a real local SMTP server (aiosmtpd, STARTTLS + AUTH);
3. **approve**: the approver's client, woken by the webhook, approves (its key
   re-seals its share; one commit);
4. **seen**: the requester's process notices the approval by polling the
   vault's change counter (a ``stat`` per poll, every 10 ms here; the TUI polls
   every 0.5 s);
5. **reveal**: the requester reveals (decrypts once; one commit).

Each operator unlocks once (Argon2id and TOTP are outside the loop: a person
types those). Between trials the requester checks the credential in (rotation,
not measured). Times are CLOCK_MONOTONIC, which Linux shares across processes.

``python -m benchmarks.outage approver ...`` is the approver's client.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from glasskey.core import totp
from glasskey.core.credentials import CredentialSpec
from glasskey.core.crypto import kdf
from glasskey.core.operators import OperatorSpec
from glasskey.core.secret import SecretValue
from glasskey.core.vault import Vault

FAST = kdf.KdfParams(1024, 1, 1, b"glasskey-bench-salt!")
OPS = {"req": ("requester",), "appr": ("approver", "admin")}
SEEDS = {"req": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "appr": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"}
STAGES = ("request", "notified_http", "notified_smtp", "approve", "seen", "reveal", "total")


def _phrase(name: str) -> str:
    return f"{name} benchmark passphrase"


def _pct(values: list[float], q: float) -> float:
    vals = sorted(values)
    if len(vals) == 1:
        return vals[0]
    return statistics.quantiles(vals, n=100, method="inclusive")[int(q) - 1]


def approver(root: str, port_file: str) -> None:
    """The approver's client: unlock once, then approve each request it is told about."""
    vault = Vault(Path(root), allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
    session = vault.unlock("appr", _phrase("appr"), totp.code_at(SEEDS["appr"], time.time()))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got = time.monotonic()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            payload = json.loads(body)
            if payload.get("event") != "checkout.requested":
                return
            with lock:
                start = time.monotonic()
                vault.approve(session, payload["request"])
                end = time.monotonic()
            sys.stdout.write(json.dumps({"request": payload["request"], "got": got,
                                         "start": start, "end": end}) + "\n")
            sys.stdout.flush()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def time_to_credential(args: dict[str, Any]) -> dict[str, Any]:
    """The benchmark step (benchmarks/steps.py STEPS["outage"])."""
    # The test servers are plain modules of tests/ (pytest puts that folder on the path).
    tests_dir = str(Path(__file__).resolve().parent.parent / "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from notify_servers import SmtpReceiver

    trials = int(args.get("trials", 30))
    os.environ["GLASSKEY_INSECURE_FAST_KDF"] = "1"
    base = Path(tempfile.mkdtemp(prefix="gk-outage-"))
    root = base / "vault"
    os.environ["GLASSKEY_STATE_DIR"] = str(base / "requester-state")
    vault = Vault(root, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
    vault.initialise([OperatorSpec(n, r, _phrase(n), SEEDS[n]) for n, r in OPS.items()],
                     kdf_params=FAST)
    now = time.time()
    req_s = vault.unlock("req", _phrase("req"), totp.code_at(SEEDS["req"], now))
    adm = vault.unlock("appr", _phrase("appr"), totp.code_at(SEEDS["appr"], now - 30))
    vault.add_credential(adm, CredentialSpec("prod-db", secret=SecretValue("bench-value")))
    smtp = SmtpReceiver(base)
    pfile = base / "smtp-password"
    pfile.write_text(smtp.password + "\n")
    pfile.chmod(0o600)
    site = base / "site.toml"
    site.write_text(f'[notify.email]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                    f'username = "{smtp.username}"\npassword_file = "{pfile}"\n')
    os.environ["GLASSKEY_SITE_CONFIG"] = str(site)
    port_file = base / "approver.port"
    env = dict(os.environ, GLASSKEY_STATE_DIR=str(base / "approver-state"))
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.outage", "approver", str(root),
                             str(port_file)], env=env, stdout=subprocess.PIPE, text=True)
    approvals: dict[str, dict[str, float]] = {}
    cond = threading.Condition()

    def read_approver() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            doc = json.loads(line)
            with cond:
                approvals[doc["request"]] = doc
                cond.notify_all()

    threading.Thread(target=read_approver, daemon=True).start()
    deadline = time.monotonic() + 30
    while not port_file.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    port = int(port_file.read_text())
    (root / "glasskey.toml").write_text(
        f'[notify]\nwebhook = "http://127.0.0.1:{port}/hook"\ntimeout = 5\n'
        f'[notify.email]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
        f'from = "glasskey@example.test"\ncafile = "{smtp.cert}"\n'
        f'[notify.email.to]\napprover = ["approvers@example.test"]\n')
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    try:
        for i in range(trials):
            mails = len(smtp.messages)
            t0 = time.monotonic()
            req = vault.request(req_s, "prod-db", "primary down", f"INC-{i}", 600)
            t1 = time.monotonic()
            with cond:
                while req.id not in approvals:
                    if not cond.wait(30):
                        raise SystemExit("the approver never approved")
            ap = approvals[req.id]
            got = smtp.wait_for(mails + 1, timeout=30)
            if len(got) <= mails:
                raise SystemExit("no mail arrived")
            mail_at = got[mails].at
            seq = vault.store.seq()
            while vault.checkout(req.id).state != "approved":
                while vault.store.seq() == seq:
                    time.sleep(0.01)
                seq = vault.store.seq()
            t_seen = time.monotonic()
            secret = vault.reveal(req_s, req.id)
            t_end = time.monotonic()
            assert secret.reveal()
            samples["request"].append(t1 - t0)
            samples["notified_http"].append(ap["got"] - t1)
            samples["notified_smtp"].append(mail_at - t1)
            samples["approve"].append(ap["end"] - ap["start"])
            samples["seen"].append(t_seen - ap["end"])
            samples["reveal"].append(t_end - t_seen)
            samples["total"].append(t_end - t0)
            vault.checkin(req_s, req.id)
            vault.wait_notifications()
    finally:
        proc.terminate()
        proc.wait(10)
        smtp.close()
    return {
        "trials": trials,
        "stages": {s: {"p50_ms": _pct(v, 50) * 1e3, "p95_ms": _pct(v, 95) * 1e3}
                   for s, v in samples.items()},
    }


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "approver":
        approver(sys.argv[2], sys.argv[3])
        return
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(json.dumps(time_to_credential({"trials": trials}), indent=2))


if __name__ == "__main__":
    main()
