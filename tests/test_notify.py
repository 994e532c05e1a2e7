"""Notifications (issue 14; RELIABILITY.md N1, N2): real receivers, real failures.

A real HTTP receiver (http.server on 127.0.0.1), a real SMTP server (aiosmtpd,
STARTTLS with a certificate made here, AUTH with a password read from a file
the site policy names) and a real command hook. Receivers that are down, slow
or answer 500: the commit is not delayed, the delivery is queued in the vault,
audited, shown in ``alerts``, retried, and delivered once the receiver is back,
with the same delivery id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from checkout_world import SEEDS, World, make_world, passphrase
from glasskey.core import config
from glasskey.core.errors import UsageError
from glasskey.core.notify import OUTBOX, chat, plain
from notify_servers import HttpReceiver, SmtpReceiver
from servers import free_port

APPROVERS = "sec-team@example.test"



#: The hook keeps each run's stdin in its own file: deliveries may run at the same time, and
#: two runs appending to one file could interleave their JSON.
HOOK = '#!/bin/sh\nmkdir -p {out}\ncat > "$(mktemp -p {out} run.XXXXXX)"\n'


def hook_inputs(out: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("run.*"))]


def events_of(w: World, name: str) -> list[dict[str, object]]:
    out = []
    for line in w.vault.audit_lines():  # complete lines: a delivery thread may be appending
        entry = json.loads(line)
        if entry["event"] == name:
            out.append(entry)
    return out


def configure(w: World, tmp_path: Path, *, webhook: str | None = None, fmt: str = "json",
              hook: Path | None = None, smtp: SmtpReceiver | None = None,
              timeout: float = 2.0) -> None:
    lines = ["[notify]", f"timeout = {timeout}", f'format = "{fmt}"']
    if webhook:
        lines.append(f'webhook = "{webhook}"')
    if hook:
        lines.append(f'command = "{hook}"')
    if smtp is not None:
        lines += ["[notify.email]", 'host = "127.0.0.1"', f"port = {smtp.port}",
                  'from = "glasskey@example.test"', f'cafile = "{smtp.cert}"',
                  "[notify.email.to]", f'approver = ["{APPROVERS}"]',
                  "[notify.email.operators]", 'alice = "alice@example.test"']
        pfile = tmp_path / "smtp-password"
        pfile.write_text(smtp.password + "\n")
        pfile.chmod(0o600)
        site = tmp_path / "site.toml"
        site.write_text(f'[command]\nallowed_dirs = ["{tmp_path.resolve()}"]\n'
                        f'[notify.email]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                        f'username = "{smtp.username}"\npassword_file = "{pfile}"\n')
        os.environ["GLASSKEY_SITE_CONFIG"] = str(site)
    (w.root / "glasskey.toml").write_text("\n".join(lines) + "\n")
    w.vault.services.notify.settings_cache = None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    saved = os.environ.get("GLASSKEY_SITE_CONFIG")
    w = make_world(tmp_path)
    w.add("db-root", "v1-value")
    yield w
    w.vault.wait_notifications()
    if saved is None:
        os.environ.pop("GLASSKEY_SITE_CONFIG", None)
    else:
        os.environ["GLASSKEY_SITE_CONFIG"] = saved


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    r = HttpReceiver()
    yield r
    r.close()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpReceiver]:
    r = SmtpReceiver(tmp_path)
    yield r
    r.close()


def test_every_channel_hears_of_a_request_and_of_the_decision(
        world: World, tmp_path: Path, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    w = world
    out = tmp_path / "hook.jsonl"
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK.format(out=out))
    hook.chmod(0o755)
    configure(w, tmp_path, webhook=http.url, hook=hook, smtp=smtp)
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)
    w.vault.wait_notifications()
    [posted] = http.wait_for(1)
    payload = json.loads(posted.body)
    assert payload["event"] == "checkout.requested"
    assert payload["request"] == req.id and payload["credential"] == "db-root"
    assert payload["requester"] == "alice" and payload["reason"] == "primary down"
    assert payload["ticket"] == "INC-42" and payload["expires"]
    assert payload["command"] == f"glasskey approve {req.id}"
    assert payload["to"] == {"role": "approver"}
    assert posted.headers["x-glasskey-delivery"] == payload["delivery_id"]
    [mail] = smtp.wait_for(1)
    assert mail.tls and mail.login == smtp.username  # STARTTLS, then AUTH
    assert mail.rcpts == [APPROVERS]
    assert f"glasskey approve {req.id}" in mail.message.get_payload()
    hooked = hook_inputs(out)
    assert [h["event"] for h in hooked] == ["checkout.requested"]
    # three channels, three distinct delivery ids for one event
    assert len({payload["delivery_id"], mail.message["X-Glasskey-Delivery"],
                hooked[0]["delivery_id"]}) == 3

    w.vault.approve(w.s("bob"), req.id)
    w.vault.wait_notifications()
    approved = json.loads(http.wait_for(2)[1].body)
    assert approved["event"] == "checkout.approved"
    assert approved["to"] == {"operator": "alice"}
    assert approved["command"] == f"glasskey reveal {req.id}"
    assert smtp.wait_for(2)[1].rcpts == ["alice@example.test"]

    w.add("other", "o-value")
    r2 = w.vault.request(w.s("alice"), "other", "need it", "INC-44", 600)
    w.vault.deny(w.s("carol"), r2.id, "use the replica instead")
    w.vault.wait_notifications()
    denied = [json.loads(r.body) for r in http.wait_for(4)][-1]
    assert denied["event"] == "checkout.denied"
    assert "use the replica instead" in denied["detail"]
    assert not w.vault.queued_notifications()


def test_receiver_answering_500_is_queued_audited_alerted_and_retried_once_back(
        world: World, tmp_path: Path, http: HttpReceiver) -> None:
    w = world
    http.mode = "500"
    configure(w, tmp_path, webhook=http.url)
    t0 = time.monotonic()
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)
    assert time.monotonic() - t0 < 1.0  # the commit does not wait for the receiver
    w.vault.wait_notifications()
    [queued] = w.vault.queued_notifications()
    assert queued["payload"]["request"] == req.id and queued["attempts"] == 1
    assert "HTTP 500" in queued["reason"]
    [failed] = events_of(w, "notify.failed")
    assert failed["actor"] == "alice" and failed["sig"]  # signed by the committing operator
    assert any("NOTIFY FAILING" in a and req.id in a for a in [x.message for x in w.vault.alerts()])
    # a later command before the back-off does not hammer the receiver
    w.vault.sweep(w.s("bob"))
    w.vault.wait_notifications()
    assert w.vault.queued_notifications()[0]["attempts"] == 1
    # the receiver comes back; after the back-off any command's sweep delivers it
    http.mode = "ok"
    w.clock.advance(60)
    w.vault.sweep(w.s("bob"))
    w.vault.wait_notifications()
    [got] = http.wait_for(1)
    assert json.loads(got.body)["delivery_id"] == queued["id"]
    assert not w.vault.queued_notifications()
    assert not any("NOTIFY FAILING" in a for a in [x.message for x in w.vault.alerts()])
    assert events_of(w, "notify.delivered")
    # delivered once: more sweeps send nothing more
    w.clock.advance(3600)
    w.vault.sweep(w.s("carol"))
    w.vault.wait_notifications()
    time.sleep(0.2)
    assert len(http.received) == 1


def test_slow_and_down_receivers_never_delay_the_commit(world: World, tmp_path: Path,
                                                        http: HttpReceiver) -> None:
    w = world
    http.mode, http.delay = "slow", 4.0
    configure(w, tmp_path, webhook=http.url, timeout=1.0)
    t0 = time.monotonic()
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)
    assert time.monotonic() - t0 < 1.0
    t1 = time.monotonic()
    w.vault.wait_notifications()
    assert time.monotonic() - t1 < 3.0  # bounded by [notify] timeout (+ the queue write)
    [queued] = w.vault.queued_notifications()
    assert "did not answer within 1 s" in queued["reason"]
    # a receiver that is not there at all
    configure(w, tmp_path, webhook=f"http://127.0.0.1:{free_port()}/hook", timeout=1.0)
    t0 = time.monotonic()
    w.vault.approve(w.s("bob"), req.id)
    assert time.monotonic() - t0 < 1.0
    w.vault.wait_notifications()
    reasons = sorted(q["reason"] for q in w.vault.queued_notifications())
    assert any("could not be reached" in r for r in reasons), reasons


def test_lease_ending_in_five_minutes_tells_the_holder_once(
        world: World, tmp_path: Path, http: HttpReceiver) -> None:
    w = world
    req = w.checkout("db-root", duration=900)
    w.vault.reveal(w.s("alice"), req)
    configure(w, tmp_path, webhook=http.url)
    w.vault.sweep(w.s("bob"))
    w.vault.wait_notifications()
    assert not http.received  # 15 minutes left
    w.clock.advance(900 - 240)
    w.vault.sweep(w.s("carol"))
    w.vault.wait_notifications()
    [got] = http.wait_for(1)
    payload = json.loads(got.body)
    assert payload["event"] == "lease.ending" and payload["request"] == req
    assert payload["to"] == {"operator": "alice"}
    assert payload["command"] == f"glasskey checkin {req}"
    w.vault.sweep(w.s("bob"))
    w.vault.wait_notifications()
    time.sleep(0.2)
    assert len(http.received) == 1


@pytest.mark.parametrize("fmt", ["slack", "mattermost", "teams"])
def test_chat_formats_neutralise_what_users_typed(world: World, tmp_path: Path,
                                                  http: HttpReceiver, fmt: str) -> None:
    w = world
    configure(w, tmp_path, webhook=http.url, fmt=fmt)
    nasty = ("@channel <!here> @all [click](http://evil.example/x) <http://evil.example|ok> "
             "**bold** `code` evil.example")
    w.vault.request(w.s("alice"), "db-root", nasty, "INC-1 @here", 1800)
    w.vault.wait_notifications()
    body = json.loads(http.wait_for(1)[0].body)
    text = body["text"]
    for bad in ("@channel", "@here", "@all", "<!", "](", "http://", "<http", "**",
                "evil.example"):
        assert bad not in text, (bad, text)
    assert "glasskey approve r" in text  # our own command stays usable


def test_email_headers_cannot_be_injected(world: World, tmp_path: Path,
                                          smtp: SmtpReceiver) -> None:
    w = world
    configure(w, tmp_path, smtp=smtp)
    w.vault.request(w.s("alice"), "db-root", "down\r\nBcc: evil@example.test",
                    "INC-1\nX-Evil: 1", 1800)
    w.vault.wait_notifications()
    [mail] = smtp.wait_for(1)
    assert mail.rcpts == [APPROVERS]
    assert mail.message["Bcc"] is None and mail.message["X-Evil"] is None
    assert "\n" not in str(mail.message["Subject"]).replace("\n ", "")
    assert plain("a\r\nb\x1b[31mc\u202ed") == "a b [31mc d"
    assert "@" not in chat("@channel")


def test_smtp_password_only_after_starttls_and_only_from_the_site_policy(
        world: World, tmp_path: Path) -> None:
    w = world
    (w.root / "glasskey.toml").write_text(
        '[notify.email]\nhost = "h"\nfrom = "a@b.c"\nsmtp_password = "x"\n')
    with pytest.raises(UsageError, match="holds a secret"):
        config.load(w.root)
    with pytest.raises(UsageError, match="http"):
        config.notify_settings({"notify": {"webhook": "file:///etc/passwd"}})


def test_canaries_reach_no_payload_email_hook_or_queued_record(
        world: World, tmp_path: Path, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    """N1: canary secret values, passphrases, TOTP seeds and kit parts planted; a whole
    checkout (request, approve, reveal, lease warning, check-in with rotation, deny,
    expiry, emergency kit use) with every channel on, one channel
    failing so records are queued; no canary anywhere a notification went."""
    w = world
    canary = "CANARY-SECRET-7f3a9"
    w.add("canary-cred", canary)
    out = tmp_path / "hook.jsonl"
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK.format(out=out))
    hook.chmod(0o755)
    down = f"http://127.0.0.1:{free_port()}/down"
    configure(w, tmp_path, webhook=http.url, hook=hook, smtp=smtp)
    req = w.checkout("canary-cred", duration=900)
    assert w.vault.reveal(w.s("alice"), req).reveal() == canary
    w.clock.advance(700)
    w.vault.sweep(w.s("bob"))  # lease warning
    w.vault.wait_notifications()
    w.vault.checkin(w.s("alice"), req)
    r2 = w.vault.request(w.s("alice"), "canary-cred", "again", "INC-2", 600)
    w.vault.deny(w.s("bob"), r2.id, "no")
    w.vault.request(w.s("alice"), "canary-cred", "third", "INC-3", 600)
    w.clock.advance(4000)
    w.vault.sweep(w.s("alice"))  # expiry (her own request: no clock-ahead hold)
    w.vault.wait_notifications()
    w.vault.issue_kit([w.s("bob"), w.s("carol")])
    parts = [w.vault.kit_part(w.s(n)) for n in ("bob", "carol")]
    # the last events go to a receiver that is down: they are queued in the vault
    configure(w, tmp_path, webhook=down, hook=hook, smtp=smtp)
    _co, value = w.vault.emergency_reveal(w.s("alice"), "canary-cred", " ".join(parts),
                                         "kit drill", "INC-4", 600)
    kit_value = value.reveal()
    w.vault.wait_notifications()
    queued = w.vault.queued_notifications()
    assert queued
    events = {json.loads(r.body)["event"] for r in http.received}
    events |= {x["event"] for x in hook_inputs(out)}
    assert {"checkout.requested", "checkout.approved", "lease.ending", "checkout.denied",
            "checkout.expired", "emergency.used"} <= events, events
    haystacks = [r.body.decode() for r in http.received]
    haystacks += [m.raw.decode("utf-8", "replace") for m in smtp.wait_for(1)]
    haystacks += [p.read_text() for p in sorted(out.glob("*"))]
    haystacks.append(json.dumps(queued))
    with w.vault.store.read() as txn:
        haystacks.append(json.dumps(txn.table("meta").get(OUTBOX)))
    canaries = [canary, kit_value, *parts, *SEEDS.values(),
                *(passphrase(n) for n in ("alice", "bob", "carol")), smtp.password]
    for text in haystacks:
        for c in canaries:
            assert c not in text


def test_relay_retries_queued_deliveries_and_exits_cleanly_on_ctrl_c(
        world: World, tmp_path: Path, http: HttpReceiver) -> None:
    w = world
    http.mode = "500"
    configure(w, tmp_path, webhook=http.url)
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)
    w.vault.wait_notifications()
    assert w.vault.queued_notifications()
    http.mode = "ok"
    with w.vault.store.transaction() as txn:  # the back-off has passed (the world's
        doc = txn.table("meta").get(OUTBOX) or {}  # clock is fake, the relay's is real)
        for rec in doc["items"].values():
            rec["next_at"] = 0
        txn.table("meta").put(OUTBOX, doc)
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "glasskey.tui.cli", "relay", "--vault", str(w.root), "--interval",
         "0.2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        [got] = http.wait_for(1, timeout=20)
        assert json.loads(got.body)["request"] == req.id
        deadline = time.monotonic() + 10
        while w.vault.queued_notifications() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not w.vault.queued_notifications()
    finally:
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert b"Traceback" not in stderr


def test_relay_failures_are_audited_by_the_next_operator(world: World, tmp_path: Path,
                                                         http: HttpReceiver) -> None:
    w = world
    http.mode = "500"
    configure(w, tmp_path, webhook=http.url)
    w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)
    w.vault.wait_notifications()
    w.clock.advance(60)
    w.vault.notify_sweep(None, background=False)  # what the relay does: no operator
    [rec] = w.vault.queued_notifications()
    assert rec["attempts"] == 2 and rec["audited"] is False
    assert len(events_of(w, "notify.failed")) == 1
    w.vault.sweep(w.s("carol"))
    w.vault.wait_notifications()
    failed = events_of(w, "notify.failed")
    assert len(failed) == 2 and failed[-1]["actor"] == "carol"
    assert w.vault.queued_notifications()[0]["audited"] is True


def test_notify_test_reaches_every_channel(world: World, tmp_path: Path, http: HttpReceiver,
                                           smtp: SmtpReceiver) -> None:
    w = world
    configure(w, tmp_path, webhook=http.url, smtp=smtp)
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "glasskey.tui.cli", "notify", "test", "--vault",
                           str(w.root), "--json"], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == {"webhook": None, "email": None}
    assert json.loads(http.wait_for(1)[0].body)["event"] == "notify.test"
    assert smtp.wait_for(1)[0].rcpts == [APPROVERS]
    http.mode = "500"
    proc = subprocess.run([sys.executable, "-m", "glasskey.tui.cli", "notify", "test", "--vault",
                           str(w.root)], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 1 and b"HTTP 500" in proc.stdout + proc.stderr


def test_on_unlock_runs_once_the_vault_lock_is_released(world: World) -> None:
    """Store.on_unlock (what delivers notifications) runs after the commit with the lock
    free: another process's writer gets in at once (txn.after_commit runs inside it)."""
    from glasskey.core.vault import Vault

    w = world
    other = Vault(w.root, w.clock, lock_timeout=0.3, allow_weak_kdf=True)
    seen: list[list[str]] = []

    def probe(txn: object) -> None:
        with other.store.transaction():
            pass  # would time out (StorageError, swallowed) if the lock were held
        seen.append([e for _, e, _, _, _ in txn.recorded])  # type: ignore[attr-defined]

    w.vault.store.on_unlock = probe
    w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)
    assert seen and "checkout.requested" in seen[-1]


def test_a_failed_rotation_tells_every_approver(world: World, tmp_path: Path,
                                                http: HttpReceiver) -> None:
    from glasskey.core.credentials import CredentialSpec
    from glasskey.core.secret import SecretValue

    w = world
    script = tmp_path / "refuse.sh"
    script.write_text("#!/bin/sh\ncat > /dev/null\necho 'target refused' >&2\nexit 1\n")
    script.chmod(0o755)
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        "app-admin", connector="command", secret=SecretValue("app-value-CANARY"),
        target=str(script)))
    req = w.checkout("app-admin")
    w.vault.reveal(w.s("alice"), req)
    configure(w, tmp_path, webhook=http.url)
    assert w.vault.checkin(w.s("alice"), req).outcome == "failed"
    w.vault.wait_notifications()
    [got] = http.wait_for(1)
    payload = json.loads(got.body)
    assert payload["event"] == "rotate.failed" and payload["to"] == {"role": "approver"}
    assert payload["credential"] == "app-admin" and payload["request"] == req
    assert payload["command"] == "glasskey reconcile app-admin"
    assert "CANARY" not in got.body.decode()


def test_a_misconfigured_notify_section_is_an_alert_not_silence(world: World) -> None:
    w = world
    (w.root / "glasskey.toml").write_text('[notify]\nwebhook = "file:///etc/passwd"\n')
    w.vault.services.notify.settings_cache = None
    w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)  # still works
    assert any(a.startswith("NOTIFY MISCONFIGURED") and "http(s) URL" in a
               for a in [x.message for x in w.vault.alerts()])


def test_deliveries_are_queued_in_the_commit_so_a_crash_before_delivery_loses_none(
        world: World, tmp_path: Path, http: HttpReceiver) -> None:
    """The delivery record is written in the same commit as the event: a process that
    dies right after its commit (here: its after-commit delivery never runs) leaves it
    queued, not alerted while in flight, and delivered by a later sweep."""
    w = world
    configure(w, tmp_path, webhook=http.url)
    w.vault.store.on_unlock = None  # the committing process "dies" after its commit
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)
    [rec] = w.vault.queued_notifications()
    assert rec["attempts"] == 0 and rec["payload"]["request"] == req.id
    assert not any("NOTIFY FAILING" in a for a in [x.message for x in w.vault.alerts()])  # still in flight
    w.vault.attach_notifications()
    w.vault.sweep(w.s("bob"))  # within the grace period: left to its process
    w.vault.wait_notifications()
    assert not http.received
    w.clock.advance(60)
    w.vault.sweep(w.s("bob"))
    w.vault.wait_notifications()
    [got] = http.wait_for(1)
    assert json.loads(got.body)["delivery_id"] == rec["id"]
    assert not w.vault.queued_notifications()
