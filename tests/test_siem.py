"""SIEM export: RFC 5424 formatting, and forwarding to real loopback listeners."""

from __future__ import annotations

import io
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkout_world import World, make_world
from glasskey.core import siem, witness
from glasskey.core.audit import SYSTEM_SIGNER, Head, build_entry
from glasskey.core.errors import IntegrityError, StorageError, UsageError
from helpers import file_store

ENTRY: dict[str, Any] = {
    "seq": 42, "time": "2027-01-15T08:00:00Z", "actor": "alice",
    "event": "checkout.requested", "subject": "rabc123",
    "details": {"credential": "db-root", "reason": "outage", "ticket": "INC-1",
                "duration": 1800, "version": 1},
    "prev": "0" * 64, "actor_prev": "0" * 64, "hash": "ab" * 32, "sig": "c2ln",
}


# ==== a small RFC 5424 parser (the test's own, independent of core.siem) ============================
def parse_5424(msg: str) -> dict[str, Any]:
    head, rest = msg.split(" ", 1)
    assert head.startswith("<") and head.endswith(">1"), head
    pri = int(head[1:-2])
    timestamp, host, app, procid, msgid, rest = rest.split(" ", 5)
    assert rest.startswith("[")
    i, params = 1, {}
    sd_end = rest.index(" ")
    sd_id = rest[1:sd_end]
    i = sd_end
    while rest[i] == " ":
        i += 1
        eq = rest.index("=", i)
        name = rest[i:eq]
        assert rest[eq + 1] == '"'
        j, value = eq + 2, []
        while rest[j] != '"':
            if rest[j] == "\\":
                assert rest[j + 1] in '"\\]', "only \", \\ and ] may be escaped"
                value.append(rest[j + 1])
                j += 2
            else:
                assert rest[j] != "]", "an unescaped ] inside a PARAM-VALUE"
                value.append(rest[j])
                j += 1
        params[name] = "".join(value)
        i = j + 1
    assert rest[i] == "]"
    assert rest[i + 1] == " "
    return {"facility": pri // 8, "severity": pri % 8, "time": timestamp, "host": host,
            "app": app, "procid": procid, "msgid": msgid, "sd_id": sd_id, "params": params,
            "msg": rest[i + 2:]}


# ==== formatting ====================================================================================
def test_format_exact_line() -> None:
    line = siem.format_syslog(ENTRY, "gk-host")
    assert line == (
        '<86>1 2027-01-15T08:00:00Z gk-host glasskey - checkout.requested '
        f'[glasskey@32473 seq="42" actor="alice" subject="rabc123" hash="{"ab" * 32}"] '
        '{"credential":"db-root","duration":1800,"reason":"outage","ticket":"INC-1",'
        '"version":1}')
    parsed = parse_5424(line)
    assert (parsed["facility"], parsed["severity"]) == (10, siem.INFO)
    assert json.loads(parsed["msg"]) == ENTRY["details"]


@pytest.mark.parametrize(("event", "details", "severity"), [
    ("emergency.used", {"kit": "kit-1"}, siem.ALERT),
    ("checkout.refused", {"why": "self-approval"}, siem.WARNING),
    ("auth.failed", {"failures": 3}, siem.WARNING),
    ("auth.locked", {"retry_in": 30}, siem.WARNING),
    ("rotate.failed", {"error": "down"}, siem.WARNING),
    ("onboarding.expired", {}, siem.WARNING),
    ("review.recorded", {"outcome": "concern"}, siem.WARNING),
    ("review.recorded", {"outcome": "ok"}, siem.NOTICE),
    ("checkout.revealed", {}, siem.NOTICE),
    ("operator.removed", {}, siem.NOTICE),
    ("emergency.kit-burned", {}, siem.NOTICE),
    ("report.attested", {}, siem.NOTICE),
    ("checkout.requested", {}, siem.INFO),
    ("rotate.intent", {}, siem.INFO),
    ("something.new-failed", {}, siem.WARNING),
    ("something.else", {}, siem.INFO),
])
def test_severity_per_event(event: str, details: dict[str, Any], severity: int) -> None:
    entry = dict(ENTRY, event=event, details=details)
    for facility in (siem.FACILITY_AUTH, siem.FACILITY_AUTHPRIV):
        line = siem.format_syslog(entry, "h", facility=facility)
        assert line.startswith(f"<{facility * 8 + severity}>1 ")


def test_pri_values() -> None:
    emergency = dict(ENTRY, event="emergency.used")
    assert siem.format_syslog(emergency, "h").startswith("<81>1 ")  # authpriv.alert
    assert siem.format_syslog(emergency, "h", facility=4).startswith("<33>1 ")  # auth.alert
    failed = dict(ENTRY, event="auth.failed")
    assert siem.format_syslog(failed, "h", facility=4).startswith("<36>1 ")  # auth.warning
    with pytest.raises(UsageError):
        siem.format_syslog(ENTRY, "h", facility=16)


def test_sd_param_escaping_round_trips() -> None:
    nasty = 'x"y\\z]w [a="b"] \u00e9'
    entry = dict(ENTRY, subject=nasty, actor="sys]tem")
    line = siem.format_syslog(entry, "h")
    assert 'subject="x\\"y\\\\z\\]w [a=\\"b\\"\\] \u00e9"' in line
    assert 'actor="sys\\]tem"' in line
    parsed = parse_5424(line)
    assert parsed["params"] == {"seq": "42", "actor": "sys]tem", "subject": nasty,
                                "hash": "ab" * 32}
    assert siem.sd_escape('a"b\\c]d') == 'a\\"b\\\\c\\]d'


def test_header_fields_and_message_stay_on_one_ascii_line() -> None:
    entry = dict(ENTRY, event="x" * 40 + " y",
                 details={"note": "line one\nline two \u00e9\u2603", "n": None})
    line = siem.format_syslog(entry, "my host\u00e9", app="glass key")
    assert "\n" not in line and line.isascii()
    parsed = parse_5424(line)
    assert parsed["host"] == "my_host_" and parsed["app"] == "glass_key"
    assert parsed["msgid"] == "x" * 32 and parsed["procid"] == "-"
    assert json.loads(parsed["msg"]) == entry["details"]
    assert parse_5424(siem.format_syslog(dict(ENTRY, details=None), ""))["host"] == "-"


def test_octet_counting_frame() -> None:
    assert siem.frame_octet_counting("<13>1 - - - - - - \u00e9") == (
        b"20 <13>1 - - - - - - \xc3\xa9")


# ==== export ========================================================================================
@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.add("db-root", "CANARY-siem-value-1")
    req = w.checkout("db-root")
    w.vault.reveal(w.s("alice"), req)
    w.clock.advance(120)
    w.vault.checkin(w.s("alice"), req)
    return w


def test_export_syslog_writes_every_entry(world: World) -> None:
    out = io.StringIO()
    count = siem.export_syslog(world.vault.audit_lines(), out, "gk-host", facility=4)
    entries = list(file_store(world.vault).audit.entries())
    lines = out.getvalue().splitlines()
    assert count == len(entries) == len(lines) and count >= 8
    for entry, line in zip(entries, lines):
        parsed = parse_5424(line)
        assert parsed["facility"] == 4 and parsed["msgid"] == entry["event"]
        assert parsed["params"]["seq"] == str(entry["seq"])
        assert parsed["params"]["hash"] == entry["hash"]
        assert parsed["time"] == entry["time"]
    assert "CANARY" not in out.getvalue()


# ==== real listeners on loopback ====================================================================
class _Collector:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.lock = threading.Lock()

    def add(self, msg: str) -> None:
        with self.lock:
            self.messages.append(msg)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.01)
        with self.lock:
            return list(self.messages)


@pytest.fixture
def udp_listener() -> Iterator[tuple[int, _Collector]]:
    got = _Collector()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            got.add(self.request[0].decode("utf-8"))

    server = socketserver.UDPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.server_address[1], got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def tcp_listener() -> Iterator[tuple[int, _Collector]]:
    got = _Collector()
    bad: list[str] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while True:
                digits = b""
                while True:  # MSG-LEN SP
                    ch = self.rfile.read(1)
                    if not ch:
                        return
                    if ch == b" ":
                        break
                    if not ch.isdigit():
                        bad.append(f"non-digit {ch!r} in a frame length")
                        return
                    digits += ch
                data = self.rfile.read(int(digits))
                if len(data) != int(digits):
                    bad.append("short frame")
                    return
                got.add(data.decode("utf-8"))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.server_address[1], got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        assert not bad, bad


def _seqs(messages: list[str]) -> list[int]:
    return [int(parse_5424(m)["params"]["seq"]) for m in messages]


def _more_activity(w: World) -> None:
    req = w.checkout("db-root", requester="carol", approvers=("bob",))
    w.vault.cancel(w.s("carol"), req)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_forward_sends_every_entry_then_only_new_ones(
        world: World, tmp_path: Path, protocol: str,
        request: pytest.FixtureRequest) -> None:
    port, got = request.getfixturevalue(f"{protocol}_listener")
    state = tmp_path / "fwd-state.json"
    total = len(list(file_store(world.vault).audit.entries()))
    result = siem.forward_new(world.vault, "127.0.0.1", port, protocol, state,
                              hostname="gk-test")
    assert (result.sent, result.first_seq, result.last_seq) == (total, 1, total)
    messages = got.wait_for(total)
    assert _seqs(messages) == list(range(1, total + 1))
    assert all(parse_5424(m)["host"] == "gk-test" for m in messages)
    saved = json.loads(state.read_text())
    assert saved["last_seq"] == total and saved["vault_id"] == world.vault.vault_id
    # Nothing new: nothing sent.
    again = siem.forward_new(world.vault, "127.0.0.1", port, protocol, state)
    assert again.sent == 0 and again.last_seq == total
    # New activity: resume after the last forwarded seq, no duplicates.
    _more_activity(world)
    now_total = len(list(file_store(world.vault).audit.entries()))
    assert now_total > total
    third = siem.forward_new(world.vault, "127.0.0.1", port, protocol, state)
    assert (third.sent, third.first_seq, third.last_seq) == (now_total - total, total + 1,
                                                             now_total)
    messages = got.wait_for(now_total)
    assert _seqs(messages) == list(range(1, now_total + 1))
    events = [parse_5424(m)["msgid"] for m in messages[total:]]
    # an approved request that is cancelled is a release: it rotates (issue 10)
    assert events == ["checkout.requested", "checkout.approved", "checkout.cancelled",
                      "rotate.intent", "rotate.commit"]


def test_first_run_without_backfill_starts_at_the_head(
        world: World, tmp_path: Path, udp_listener: tuple[int, _Collector]) -> None:
    port, got = udp_listener
    state = tmp_path / "s.json"
    head = len(list(file_store(world.vault).audit.entries()))
    first = siem.forward_new(world.vault, "127.0.0.1", port, "udp", state, backfill=False)
    assert first.sent == 0 and first.last_seq == head
    _more_activity(world)
    second = siem.forward_new(world.vault, "127.0.0.1", port, "udp", state)
    # (3 entries, then the release's rotate.intent and rotate.commit: issue 10)
    assert second.first_seq == head + 1 and second.sent == 5
    assert _seqs(got.wait_for(5)) == [head + 1, head + 2, head + 3, head + 4, head + 5]


def test_default_state_lives_outside_the_vault(world: World,
                                               udp_listener: tuple[int, _Collector]) -> None:
    port, _ = udp_listener
    result = siem.forward_new(world.vault, "127.0.0.1", port)
    assert result.state_path.exists()
    assert world.root not in result.state_path.parents
    assert result.state_path.parent.stat().st_mode & 0o077 == 0


def test_only_committed_entries_are_forwarded(world: World, tmp_path: Path,
                                              udp_listener: tuple[int, _Collector]) -> None:
    port, got = udp_listener
    meta = world.vault.meta()
    head = Head.from_doc(meta["audit"])
    line, _ = build_entry(head, SYSTEM_SIGNER, "auth.failed", "alice",
                          {"failures": 1, "why": "x", "locked_for": 0}, world.clock.now())
    with open(world.root / "audit.jsonl", "ab") as fh:  # appended, state not committed
        fh.write(line + b"\n")
    result = siem.forward_new(world.vault, "127.0.0.1", port, "udp", tmp_path / "s.json")
    assert result.last_seq == head.seq and result.sent == head.seq
    assert max(_seqs(got.wait_for(head.seq))) == head.seq


def test_a_rewritten_log_is_refused(world: World, tmp_path: Path,
                                    udp_listener: tuple[int, _Collector]) -> None:
    port, _ = udp_listener
    state = tmp_path / "s.json"
    siem.forward_new(world.vault, "127.0.0.1", port, "udp", state)
    log = world.root / "audit.jsonl"
    original = log.read_bytes()
    lines = original.splitlines(keepends=True)
    lines[-1] = lines[-1].replace(b'"actor":"', b'"actor":"X', 1)[:-2] + b"\n"
    log.write_bytes(b"".join(lines))
    # This client's witness checkpoint notices first ...
    with pytest.raises(IntegrityError, match="differs from the one this client saw"):
        siem.forward_new(world.vault, "127.0.0.1", port, "udp", state)
    # ... and without it (another machine), verifying every entry from genesis does.
    checkpoint = witness.state_dir() / "checkpoints" / f"{world.vault.vault_id}.json"
    checkpoint.unlink()
    with pytest.raises(IntegrityError, match=r"audit entry \d+ is not a valid entry"):
        siem.forward_new(world.vault, "127.0.0.1", port, "udp", state)
    log.write_bytes(original)
    # A state that has seen more than the log holds: truncated or rolled back.
    doc = json.loads(state.read_text())
    doc["last_seq"] += 100
    state.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="truncated or rolled back"):
        siem.forward_new(world.vault, "127.0.0.1", port, "udp", state)
    # A state whose seq and hash disagree (the entry it names is not the one forwarded).
    doc["last_seq"] -= 101
    state.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="does not continue the chain"):
        siem.forward_new(world.vault, "127.0.0.1", port, "udp", state)
    # A state whose chain does not continue into the next entry.
    doc["last_seq"] += 1
    doc["last_hash"] = "f" * 64
    state.write_text(json.dumps(doc))
    _more_activity(world)
    with pytest.raises(IntegrityError, match="does not continue the chain"):
        siem.forward_new(world.vault, "127.0.0.1", port, "udp", state)
    doc["vault_id"] = "vsomeotherone"
    state.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="another vault"):
        siem.forward_new(world.vault, "127.0.0.1", port, "udp", state)


def test_unreachable_tcp_collector_keeps_the_state(world: World, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "s.json"
    with pytest.raises(StorageError, match="cannot reach"):
        siem.forward_new(world.vault, "127.0.0.1", port, "tcp", state)
    assert not state.exists()
    with pytest.raises(UsageError):
        siem.SyslogForwarder("127.0.0.1", port, "sctp")
