"""SIEM export: the audit log as RFC 5424 syslog, to a file or forwarded live.

One audit entry becomes one syslog message::

    <PRI>1 TIMESTAMP HOSTNAME glasskey - EVENT [glasskey@32473 seq="..." actor="..."
        subject="..." hash="..."] {"details":"as canonical JSON"}

* PRI = facility * 8 + severity; facility authpriv (10) by default, auth (4)
  on request; the severity follows the event (SEVERITY below): refusals and
  failures are *warning*, an emergency-kit use is *alert*, custody changes
  are *notice*, routine steps *info*.
* TIMESTAMP is the entry's own RFC 3339 UTC time; MSGID is the event name.
* The structured data carries the fields a SIEM correlates on; PARAM-VALUEs
  escape '"', '\\' and ']' with a backslash (RFC 5424 §6.3.3). The SD-ID uses
  enterprise number 32473, which RFC 5612 reserves for documentation: a site
  with its own Private Enterprise Number passes ``sd_id``.
* MSG is the entry's details as ASCII-only JSON (non-ASCII and DEL escaped),
  so no BOM is needed and a message is always one line.
* One entry is always exactly one record: control characters (C0, DEL, C1
  with U+0085, U+2028/2029, bidi overrides) in any structured-data value are
  shown as a visible ``\\uXXXX`` (core.exports.escape_controls), so a typed
  "\\n<81>1 2030-..." cannot start a forged record.
* Forwarded messages are capped per transport (MAX_BYTES: 8 KiB over UDP,
  64 KiB over TCP); a longer entry goes out truncated with a marker that
  keeps its seq and hash, so one huge entry never stops the stream.

Forwarding (``forward_new``) sends the entries after the last one forwarded,
over UDP (RFC 5426, one message per datagram) or TCP (RFC 6587 octet
counting: ``LEN SP MSG``), and remembers the last seq, its line hash and byte
offset in a small state file outside the vault directory. Delivery is
at-least-once: a crash between sending and saving the state re-sends a few
entries, which a SIEM de-duplicates on ``seq``/``hash``. Only committed entries
are sent (up to the head the vault state records), and each forwarded entry
must chain (``prev``) to the one before it, so a log rewritten behind the
forwarder's back is refused instead of being forwarded as if nothing happened.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from glasskey.core import canonical, witness
from glasskey.core.audit import GENESIS, line_hash
from glasskey.core.errors import IntegrityError, StorageError, UsageError
from glasskey.core.exports import escape_controls
from glasskey.core.fsutil import atomic_write, ensure_private_dir
from glasskey.core.storage.interface import AuditCursor

if TYPE_CHECKING:
    from glasskey.core.vault import Vault

FACILITY_AUTH = 4
FACILITY_AUTHPRIV = 10
SD_ID = "glasskey@32473"
APP = "glasskey"

EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG = range(8)

#: Severity per event; events not named here fall back to the rules in severity_for.
SEVERITY: dict[str, int] = {
    "emergency.used": ALERT,
    "checkout.refused": WARNING,
    "checkout.denied": NOTICE,
    "rotate.failed": WARNING,
    "rotate.rollback": NOTICE,
    "auth.failed": WARNING,
    "auth.locked": WARNING,
    "lease.expired": WARNING,
    "lease.overdue": WARNING,
    "onboarding.expired": WARNING,
    "audit.tail-quarantined": WARNING,
    "audit.uncommitted": WARNING,
    "checkout.approved": NOTICE,
    "checkout.revealed": NOTICE,
    "rotate.commit": NOTICE,
    "rotate.apply-pending": NOTICE,
    "rotate.apply-revealed": NOTICE,
    "review.recorded": NOTICE,
    "onboarding.issued": NOTICE,
    "onboarding.approved": NOTICE,
    "onboarding.revealed": NOTICE,
    "onboarding.activated": NOTICE,
    "onboarding.revoked": NOTICE,
    "emergency.kit-issued": NOTICE,
    "emergency.kit-burned": NOTICE,
    "report.attested": NOTICE,
    "credential.added": NOTICE,
}


def severity_for(entry: dict[str, Any]) -> int:
    event = str(entry.get("event", ""))
    if event == "review.recorded":
        details = entry.get("details")
        if isinstance(details, dict) and details.get("outcome") == "concern":
            return WARNING
    if event in SEVERITY:
        return SEVERITY[event]
    group, _, action = event.partition(".")
    if action.endswith(("failed", "refused")):
        return WARNING
    if group in ("operator", "emergency"):
        return NOTICE
    return INFO


def _header_token(value: str, limit: int) -> str:
    """A header field: 1..limit printable US-ASCII characters, '-' when empty."""
    token = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:limit]
    return token or "-"


def sd_escape(value: str) -> str:
    r"""Escape a PARAM-VALUE: '"', '\' and ']' get a backslash (RFC 5424 §6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


#: Largest message sent per transport (bytes). A UDP datagram carries at most
#: 65,507 bytes and many collectors keep 8 KiB (rsyslog's default); TCP
#: collectors usually cap a frame at 64 KiB. A larger entry is truncated with a
#: marker (below), never refused: one entry must not stop the stream.
MAX_BYTES: dict[str, int] = {"udp": 8192, "tcp": 65536}
#: Structured-data values are cut to this many characters in a truncated message.
PARAM_CAP = 256
#: The smallest limit format_syslog accepts (room for the header and the marker).
MIN_BYTES = 1024


def _param(value: Any) -> str:
    """A PARAM-VALUE: control characters shown as \\uXXXX, then RFC 5424 escapes."""
    return sd_escape(escape_controls(str(value)))


def _msg_json(value: Any) -> str:
    """ASCII-only one-line JSON; DEL (ASCII, so json leaves it raw) escaped too."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).replace("\x7f", "\\u007f")


def format_syslog(entry: dict[str, Any], hostname: str, app: str = APP, *,
                  facility: int = FACILITY_AUTHPRIV, sd_id: str = SD_ID,
                  max_bytes: int | None = None) -> str:
    """One audit entry as one RFC 5424 message (no trailing newline).

    Every field is one line of printable text whatever the entry holds: header
    fields keep printable US-ASCII only, structured-data values show control
    characters (C0, DEL, C1, U+2028/2029, bidi overrides) as ``\\uXXXX``, and
    MSG is ASCII-only JSON. With ``max_bytes`` (per transport, MAX_BYTES) a
    message that would be longer is truncated: the SD gets ``truncated="N"``
    (the full length in bytes), long values are cut to PARAM_CAP characters,
    and MSG becomes ``{"truncated":true,"original_bytes":N,"hash":...,
    "details_prefix":...}``. The entry hash is always kept, so the SIEM can
    fetch the full entry from the log.
    """
    if facility not in (FACILITY_AUTH, FACILITY_AUTHPRIV):
        raise UsageError("syslog facility must be auth (4) or authpriv (10)")
    if max_bytes is not None and max_bytes < MIN_BYTES:
        raise UsageError(f"a syslog message limit below {MIN_BYTES} bytes is too small")
    pri = facility * 8 + severity_for(entry)
    timestamp = _header_token(str(entry.get("time") or ""), 64)
    header = (f"<{pri}>1 {timestamp} {_header_token(hostname, 255)} {_header_token(app, 48)} - "
              f"{_header_token(str(entry.get('event') or ''), 32)} ")
    names = ("seq", "actor", "subject", "hash")
    params = " ".join(f'{name}="{_param(entry.get(name, ""))}"' for name in names)
    details = entry.get("details")
    msg = _msg_json(details if details is not None else {})
    line = f"{header}[{_header_token(sd_id, 32)} {params}] {msg}"
    full = len(line.encode("utf-8"))
    if max_bytes is None or full <= max_bytes:
        return line
    return _truncated(entry, header, sd_id, msg, full, max_bytes)


def _cap(value: Any) -> str:
    text = str(value)
    return text if len(text) <= PARAM_CAP else text[:PARAM_CAP] + "...[truncated]"


def _truncated(entry: dict[str, Any], header: str, sd_id: str, msg: str, full: int,
               max_bytes: int) -> str:
    """The marker form of an over-long message; always <= max_bytes."""
    names = ("seq", "actor", "subject", "hash")
    params = " ".join(f'{name}="{_param(_cap(entry.get(name, "")))}"' for name in names)
    head = f"{header}[{_header_token(sd_id, 32)} {params} truncated=\"{full}\"] "
    # The header fields are capped (255 + 48 + 32 + 64) and so are the params:
    # the head never exceeds ~11 KiB even with every character escaped.
    marker: dict[str, Any] = {"truncated": True, "original_bytes": full,
                              "hash": _cap(entry.get("hash", "")), "details_prefix": ""}
    head_bytes = len(head.encode("utf-8"))
    # MSG is ASCII JSON, so its length in characters is its length in bytes;
    # escaping the prefix can only make it longer, so shrink until it fits.
    room = max_bytes - head_bytes - len(_msg_json(marker))
    prefix = msg[:max(room, 0)]
    while True:
        marker["details_prefix"] = prefix
        body = _msg_json(marker)
        over = head_bytes + len(body) - max_bytes
        if over <= 0:
            return head + body
        if not prefix:
            break
        prefix = prefix[:max(0, len(prefix) - over)]
    # Only an enormous sd_id or hostname gets here: keep seq and hash alone.
    seq, digest = _param(_cap(entry.get("seq", ""))), _param(_cap(entry.get("hash", "")))
    return (f"{header}[{_header_token(sd_id, 32)} seq=\"{seq}\" hash=\"{digest}\" "
            f"truncated=\"{full}\"] " + _msg_json({"truncated": True, "original_bytes": full}))


class _Writer(Protocol):
    def write(self, text: str, /) -> Any: ...


def export_syslog(lines: Iterable[bytes], out: _Writer, hostname: str | None = None, *,
                  app: str = APP, facility: int = FACILITY_AUTHPRIV) -> int:
    """Write every entry of ``lines`` (``vault.audit_lines()``) as one syslog line
    (LF-terminated); returns the count."""
    host = hostname or socket.gethostname()
    count = 0
    for entry in map(canonical.loads, lines):
        out.write(format_syslog(entry, host, app, facility=facility) + "\n")
        count += 1
    return count


def frame_octet_counting(message: str) -> bytes:
    """RFC 6587 §3.4.1: ``MSG-LEN SP SYSLOG-MSG`` (length in octets)."""
    data = message.encode("utf-8")
    return str(len(data)).encode("ascii") + b" " + data


class SyslogForwarder:
    """Sends syslog messages to one collector over UDP or TCP.

    Use as a context manager. UDP sends one message per datagram (RFC 5426);
    TCP frames each message with octet counting (RFC 6587).
    """

    def __init__(self, host: str, port: int, protocol: str = "udp", *,
                 timeout: float = 10.0) -> None:
        if protocol not in ("udp", "tcp"):
            raise UsageError(f"protocol {protocol!r} is not udp or tcp")
        if not 0 < int(port) < 65536:
            raise UsageError(f"port {port} is not a valid port number")
        self.host, self.port, self.protocol, self.timeout = host, int(port), protocol, timeout
        self._sock: socket.socket | None = None

    def __enter__(self) -> SyslogForwarder:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self._sock is not None:
            return
        kind = socket.SOCK_DGRAM if self.protocol == "udp" else socket.SOCK_STREAM
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=kind)
        except OSError as exc:
            raise StorageError(f"cannot resolve syslog collector {self.host}: {exc}") from None
        last: OSError | None = None
        for family, socktype, proto, _, addr in infos:
            sock = socket.socket(family, socktype, proto)
            sock.settimeout(self.timeout)
            try:
                sock.connect(addr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            self._sock = sock
            return
        raise StorageError(f"cannot reach syslog collector {self.host}:{self.port} "
                           f"over {self.protocol} ({last})")

    def send(self, message: str) -> None:
        if self._sock is None:
            self.open()
        assert self._sock is not None
        try:
            if self.protocol == "udp":
                self._sock.send(message.encode("utf-8"))
            else:
                self._sock.sendall(frame_octet_counting(message))
        except OSError as exc:
            self.close()
            raise StorageError(f"sending to syslog collector {self.host}:{self.port} "
                               f"failed ({exc})") from None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


# ==== forwarding new entries ======================================================================
@dataclass
class ForwardState:
    """What a forwarder remembers between runs (never inside the vault dir)."""

    vault_id: str
    last_seq: int = 0
    last_hash: str = GENESIS  # SHA-256 of the last forwarded *line* (the next entry's prev)

    @property
    def cursor(self) -> AuditCursor:
        return AuditCursor(self.last_seq, self.last_hash)

    def to_doc(self) -> dict[str, Any]:
        return {"vault_id": self.vault_id, "last_seq": self.last_seq,
                "last_hash": self.last_hash}


@dataclass(frozen=True)
class ForwardResult:
    sent: int
    first_seq: int | None
    last_seq: int
    state_path: Path


def default_state_path(vault_id: str, host: str, port: int, protocol: str,
                       state_dir: Path | None = None) -> Path:
    """Beside the witness checkpoints, in this client's state dir (not the vault dir)."""
    safe_host = "".join(c if c.isalnum() or c in ".-" else "_" for c in host)
    return witness.state_dir(state_dir) / "siem" / \
        f"{vault_id}-{safe_host}-{port}-{protocol}.json"


def load_state(path: Path, vault_id: str) -> ForwardState:
    try:
        doc = canonical.loads(path.read_bytes())
    except FileNotFoundError:
        return ForwardState(vault_id)
    except (OSError, IntegrityError) as exc:
        raise IntegrityError(f"the forwarding state {path} is unreadable ({exc}); "
                             "move it aside to start over") from None
    try:
        # (states written before 0.3 also carry a byte offset: no longer needed)
        state = ForwardState(str(doc["vault_id"]), int(doc["last_seq"]),
                             str(doc["last_hash"]))
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(f"the forwarding state {path} is malformed; move it aside to "
                             "start over") from None
    if state.vault_id != vault_id:
        raise UsageError(f"the forwarding state {path} belongs to another vault "
                         f"({state.vault_id})")
    return state


def save_state(path: Path, state: ForwardState) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ensure_private_dir(path.parent)
    atomic_write(path, canonical.dumps(state.to_doc()))


def forward_new(vault: Vault, host: str, port: int, protocol: str = "udp",
                state_path: Path | None = None, *, hostname: str | None = None,
                facility: int = FACILITY_AUTHPRIV, app: str = APP,
                backfill: bool = True, save_every: int = 200,
                forwarder: SyslogForwarder | None = None,
                max_bytes: int | None = None) -> ForwardResult:
    """Send every committed entry after the last one forwarded; remember where it stopped.

    ``state_path`` defaults to :func:`default_state_path` (this client's state
    dir). On the first run ``backfill`` sends the whole log; ``False`` only
    records the current head, so forwarding starts with the next entry.
    Raises IntegrityError when the log no longer continues the forwarded
    chain (rewritten, truncated or rolled back) and StorageError when the
    collector cannot be reached (the state keeps what was sent). Each message
    is at most ``max_bytes`` (default MAX_BYTES for the protocol): a longer
    entry is sent truncated with its hash, so it can never block the entries
    after it.
    """
    vault_id = vault.vault_id
    path = state_path or default_state_path(vault_id, host, port, protocol,
                                            vault.context.state_dir)
    state = load_state(path, vault_id)
    with vault.store.read() as txn:  # verified up to the head: only that is forwarded
        head = txn.audit_head
    head_seq = head.seq
    if state.last_seq > head_seq:
        raise IntegrityError(
            f"the audit log ends at entry {head_seq} but entry {state.last_seq} was already "
            "forwarded: it was truncated or rolled back")
    if state.last_seq == 0 and not backfill:
        state.last_seq, state.last_hash = head.seq, head.hash
        save_state(path, state)
        return ForwardResult(0, None, state.last_seq, path)
    lines = _lines_after(vault, state)
    if state.last_seq == head_seq:
        return ForwardResult(0, None, state.last_seq, path)
    host_name = hostname or socket.gethostname()
    limit = max_bytes if max_bytes is not None else MAX_BYTES.get(protocol, MAX_BYTES["udp"])
    own = forwarder is None
    fwd = forwarder or SyslogForwarder(host, port, protocol)
    sent, first = 0, None
    try:
        if own:
            fwd.open()
        for raw in lines:
            try:
                entry = canonical.loads(raw)
            except IntegrityError:
                raise IntegrityError(f"audit entry {state.last_seq + 1} is not valid JSON; "
                                     "run 'glasskey audit verify'") from None
            seq = entry.get("seq") if isinstance(entry, dict) else None
            if seq != state.last_seq + 1 or entry.get("prev") != state.last_hash:
                raise IntegrityError(
                    f"audit entry {state.last_seq + 1} does not continue the chain already "
                    "forwarded: the log was rewritten or rolled back; run 'glasskey audit "
                    "verify'")
            if seq > head_seq:
                break  # appended but not yet committed by the vault state
            fwd.send(format_syslog(entry, host_name, app, facility=facility, max_bytes=limit))
            sent += 1
            first = first if first is not None else seq
            state.last_seq, state.last_hash = seq, line_hash(raw)
            if sent % save_every == 0:
                save_state(path, state)
            if seq == head_seq:
                break
        else:
            if state.last_seq < head_seq:
                raise IntegrityError(
                    f"the audit log ends before entry {state.last_seq + 1}, which the vault "
                    "state records: it was truncated; run 'glasskey audit verify'")
    finally:
        if sent:
            save_state(path, state)
        if own:
            fwd.close()
    return ForwardResult(sent, first, state.last_seq, path)


def _lines_after(vault: Vault, state: ForwardState) -> Iterator[bytes]:
    """The log after the last forwarded entry, which must still be what it was."""
    try:
        return vault.audit_lines(state.cursor)
    except IntegrityError:
        raise IntegrityError(
            f"the audit log does not continue the chain already forwarded (entry "
            f"{state.last_seq} differs from the one forwarded): it was rewritten or rolled "
            "back; run 'glasskey audit verify'") from None


__all__ = [
    "FACILITY_AUTH", "FACILITY_AUTHPRIV", "MAX_BYTES", "SD_ID", "ForwardResult", "ForwardState",
    "SyslogForwarder", "default_state_path", "export_syslog", "format_syslog",
    "forward_new", "frame_octet_counting", "load_state", "save_state", "sd_escape",
    "severity_for",
]
