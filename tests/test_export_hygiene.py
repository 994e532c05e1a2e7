"""One record per entry, never silenced: syslog, JSONL and CSV exports under attack.

The attacks are the ones the second attack pass found (issue 15): a refused
``kit use`` whose credential argument holds a line feed and a whole forged
RFC 5424 record; reasons holding U+2028, U+0085, DEL and U+009B; subjects
that a spreadsheet runs as formulas; and one 40 kB entry (120 kB once
escaped) that made every UDP forward fail at that entry, forever. Every
check uses a real vault, real signed entries, real loopback UDP and TCP
collectors, and a strict RFC 5424 parser written here.
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkout_world import World, make_world
from glasskey.core import canonical, siem
from glasskey.core.audit import line_hash
from glasskey.core.emergency import encode_part
from glasskey.core.errors import GlasskeyError, UsageError
from glasskey.core.exports import csv_cell, escape_controls, export, jsonl_line
from helpers import file_store

FORGED = ('db-root\n<81>1 2030-01-01T00:00:00Z evil glasskey - emergency.kit-burned '
          '[glasskey@32473 seq="9999" actor="bob" subject="kit-1" hash="00"] {}')
SEPARATORS = "a\u2028b\u2029c\x85d\x7fe\x9bf\x1b[2Jg\rh\x0bi\x0cj\x1ck"
#: Every character str.splitlines() splits on, plus the rest of C0/C1 and DEL.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

#: Both parts of a kit that was never issued.
WRONG_KIT = encode_part(1, bytes(range(32))) + " " + encode_part(2, bytes(32))


# ==== a strict RFC 5424 parser (the test's own) ===================================================
PRINTUS = re.compile(r"[\x21-\x7e]+")
SD_NAME = re.compile(r'[\x21-\x7e]{1,32}')
TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def strict_5424(msg: str) -> dict[str, Any]:
    """Parse one SYSLOG-MSG by the RFC 5424 ABNF, refusing anything else."""
    assert not CONTROL.search(msg), f"a control character in a record: {msg[:80]!r}"
    m = re.match(r"<(\d{1,3})>1 ", msg)
    assert m, f"bad PRI/VERSION: {msg[:20]!r}"
    pri = int(m.group(1))
    assert 0 <= pri <= 191 and (m.group(1) == "0" or not m.group(1).startswith("0"))
    rest = msg[m.end():]
    fields = rest.split(" ", 5)
    assert len(fields) == 6
    timestamp, host, app, procid, msgid, rest = fields
    assert timestamp == "-" or TIMESTAMP.fullmatch(timestamp), timestamp
    for value, limit in ((host, 255), (app, 48), (procid, 128), (msgid, 32)):
        assert PRINTUS.fullmatch(value) and len(value) <= limit, value
    assert rest.startswith("["), "this exporter always writes structured data"
    i = 1
    j = i
    while rest[j] not in " ]":
        j += 1
    sd_id = rest[i:j]
    assert SD_NAME.fullmatch(sd_id) and not set(sd_id) & set('= ]"')
    params: dict[str, str] = {}
    i = j
    while rest[i] == " ":
        eq = rest.index("=", i + 1)
        name = rest[i + 1:eq]
        assert SD_NAME.fullmatch(name) and not set(name) & set('= ]"'), name
        assert rest[eq + 1] == '"'
        k, chars = eq + 2, list[str]()
        while rest[k] != '"':
            if rest[k] == "\\" and rest[k + 1] in '"\\]':
                chars.append(rest[k + 1])
                k += 2
            else:
                assert rest[k] != "]", "an unescaped ] inside a PARAM-VALUE"
                chars.append(rest[k])
                k += 1
        assert name not in params, f"duplicate PARAM-NAME {name}"
        params[name] = "".join(chars)
        i = k + 1
    assert rest[i] == "]", "SD-ELEMENT not closed"
    body = rest[i + 1:]
    assert body == "" or body.startswith(" ")
    return {"pri": pri, "time": timestamp, "host": host, "app": app, "procid": procid,
            "msgid": msgid, "sd_id": sd_id, "params": params, "msg": body[1:]}


# ==== a vault with the attacks in its log ========================================================
def _record(w: World, who: str, event: str, subject: str, details: dict[str, Any]) -> None:
    with w.vault.store.transaction() as txn:
        txn.record(w.s(who).signer, event, subject, details)


@pytest.fixture
def attacked(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.add("db-root", "CANARY-export-value-1")
    # The path the attack pass used: a refused kit use with a forged record as
    # the credential argument (no kit was ever issued, so the code is "unknown").
    try:
        w.vault.emergency_reveal(w.s("alice"), FORGED, WRONG_KIT,
                                 "outage", "INC-1", 600)
    except GlasskeyError:
        pass
    # The same text reaching the log through any other signed entry.
    _record(w, "alice", "emergency.refused", FORGED, {"why": "unknown-kit"})
    _record(w, "bob", "checkout.refused", "r-x", {"why": SEPARATORS, "note": FORGED})
    for formula in ("=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tx",
                    "\rx"):
        _record(w, "carol", "checkout.refused", formula, {"why": formula})
    return w


def _entries(w: World) -> list[dict[str, Any]]:
    return list(file_store(w.vault).audit.entries())


# ==== syslog export ================================================================================
def test_forged_record_in_a_subject_stays_inside_its_own_record(attacked: World) -> None:
    out = io.StringIO()
    count = siem.export_syslog(attacked.vault.audit_lines(), out, "gk-host")
    entries = _entries(attacked)
    lines = out.getvalue().splitlines()
    assert count == len(entries) == len(lines)
    parsed = [strict_5424(line) for line in lines]
    assert [p["params"]["seq"] for p in parsed] == [str(e["seq"]) for e in entries]
    assert [p["msgid"] for p in parsed] == [e["event"] for e in entries]
    assert not any(p["msgid"] == "emergency.kit-burned" for p in parsed)
    assert not any(p["time"].startswith("2030") for p in parsed)
    refused = [p for p in parsed if p["msgid"] == "emergency.refused"]
    assert refused, "the refused kit use is exported"
    for p in refused:
        # Shown, escaped, one line: the SIEM sees what was typed, not a record.
        assert p["params"]["subject"] == escape_controls(FORGED)
        assert "\\u000a<81>1 2030" in p["params"]["subject"]
    for p, e in zip(parsed, entries):
        assert p["params"]["hash"] == e["hash"]
        assert json.loads(p["msg"]) == e["details"]
    assert "CANARY" not in out.getvalue()


def test_every_syslog_field_escapes_controls() -> None:
    entry = {"seq": 7, "time": "2027-01-15T08:00:00Z", "actor": "al\u2028ice",
             "event": "x.y\n", "subject": SEPARATORS, "hash": "h\x85",
             "details": {"why": SEPARATORS}}
    line = siem.format_syslog(entry, "ho\nst", app="gl\x7fass")
    assert len(line.splitlines()) == 1
    p = strict_5424(line)
    assert p["params"]["subject"] == escape_controls(SEPARATORS)
    assert p["params"]["actor"] == "al\\u2028ice" and p["params"]["hash"] == "h\\u0085"
    assert json.loads(p["msg"]) == entry["details"] and "\x7f" not in p["msg"]


# ==== forwarding: one entry never stops the stream ================================================
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

    class Server(socketserver.UDPServer):
        max_packet_size = 65536

    server = Server(("127.0.0.1", 0), Handler)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
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
                while True:
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


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_a_huge_entry_is_truncated_and_the_stream_goes_on(
        attacked: World, tmp_path: Path, protocol: str, request: pytest.FixtureRequest) -> None:
    port, got = request.getfixturevalue(f"{protocol}_listener")
    w = attacked
    # Stored lines stay under 64 KiB (the chain check's look-back, issue 11).
    huge = "\u00e9" * (20_000 if protocol == "udp" else 24_000)
    _record(w, "alice", "checkout.refused", "r-big" + "\u00e9" * 5000,
            {"why": "x", "note": huge})
    _record(w, "alice", "emergency.used", "e-after", {"credential": "db-root", "kit": "k"})
    entries = _entries(w)
    big = next(e for e in entries if str(e["subject"]).startswith("r-big"))
    full = siem.format_syslog(big, "gk-test")
    assert len(full.encode()) > 65_507 if protocol == "udp" else len(full.encode()) > 65_536
    result = siem.forward_new(w.vault, "127.0.0.1", port, protocol, tmp_path / "s.json",
                              hostname="gk-test")
    assert result.sent == len(entries) and result.last_seq == entries[-1]["seq"]
    messages = got.wait_for(len(entries))
    assert len(messages) == len(entries)
    parsed = [strict_5424(m) for m in messages]
    assert [int(p["params"]["seq"]) for p in parsed] == [e["seq"] for e in entries]
    limit = siem.MAX_BYTES[protocol]
    assert all(len(m.encode()) <= limit for m in messages)
    cut = next(p for p in parsed if p["params"]["seq"] == str(big["seq"]))
    assert cut["params"]["hash"] == big["hash"]
    assert cut["params"]["truncated"] == str(len(full.encode()))
    marker = json.loads(cut["msg"])
    assert marker["truncated"] is True and marker["hash"] == big["hash"]
    assert marker["original_bytes"] == len(full.encode())
    assert marker["details_prefix"].startswith('{"note":"\\u00e9')
    assert parsed[-1]["msgid"] == "emergency.used" and parsed[-1]["pri"] % 8 == siem.ALERT
    # Entries that fit are sent whole.
    whole = [p for p in parsed if "truncated" not in p["params"]]
    assert len(whole) == len(entries) - 1


def test_truncation_fits_every_limit() -> None:
    entry = {"seq": 1, "time": "2027-01-15T08:00:00Z", "actor": "a" * 5000,
             "event": "e.f", "subject": "\x1b" * 5000, "hash": "ab" * 32,
             "details": {"note": "\"\\" * 50_000}}
    for limit in (1024, 1500, 2048, 8192, 65536):
        line = siem.format_syslog(entry, "h" * 300, max_bytes=limit)
        assert len(line.encode()) <= limit
        p = strict_5424(line)
        assert p["params"]["hash"] == "ab" * 32 and "truncated" in p["params"]
    with pytest.raises(UsageError):
        siem.format_syslog(entry, "h", max_bytes=100)


# ==== JSONL and CSV ================================================================================
def test_jsonl_splits_into_exactly_one_line_per_entry(attacked: World) -> None:
    out = io.StringIO()
    n = export(attacked.vault.audit_lines(), "jsonl", out)
    stored = [raw for _, raw in file_store(attacked.vault).audit.lines()]
    text = out.getvalue()
    assert n == len(stored) == len(text.splitlines())
    assert not CONTROL.search(text.replace("\n", ""))
    prev = "0" * 64
    for line, raw in zip(text.splitlines(), stored):
        value = json.loads(line)
        assert value == json.loads(raw)
        # The chain can still be checked from the export.
        assert canonical.dumps(value) == raw
        assert value["prev"] == prev
        prev = line_hash(canonical.dumps(value))
    assert jsonl_line('{"a":"\u2028\x7f"}'.encode()) == '{"a":"\\u2028\\u007f"}'


def test_csv_cells_are_inert_and_one_row_per_entry(attacked: World) -> None:
    out = io.StringIO()
    n = export(attacked.vault.audit_lines(), "csv", out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert n == len(rows) - 1 == len(_entries(attacked))
    assert len(out.getvalue().splitlines()) == len(rows)
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
            assert not CONTROL.search(cell), cell
    subjects = [row[4] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://x\",\"y\")" in subjects and "'@SUM(A1)" in subjects
    assert "'\\u0009x" in subjects and "'\\u000dx" in subjects
    assert csv_cell(-5) == "'-5" and csv_cell("ok") == "ok" and csv_cell(None) == ""
