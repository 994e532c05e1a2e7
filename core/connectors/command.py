"""Site scripts as rotation targets: one JSON object on stdin, an exit code back.

``settings.target`` is the absolute path of an executable the site provides.
glasskey runs it (no shell, no arguments) once per action and writes exactly
one JSON object, followed by a newline, to its standard input::

    {"action": "set" | "verify",
     "credential": "<credential name>",
     "value": "<the value to set, or to check>",
     "current": "<the value the vault believes is current>" | null,
     "options": {<the credential's non-secret connector options>}}

``current`` is null for ``verify`` and when the vault knows no current value.

Exit status:

* ``0``: success. For ``set``, the target now has ``value``; for ``verify``,
  the target accepts ``value`` (a real login/bind, not a lookup).
* ``1``: for ``verify``, the target rejects ``value``; for ``set``, the target
  refused the change (policy, permissions). glasskey reports the first line of
  stderr (values scrubbed out, shortened) in a ConnectorError.
* anything else, death by a signal, or no exit within the timeout
  (``options["timeout"]`` seconds, default 30; the whole process group is then
  killed): the target is unreachable or the script failed: ConnectorError.
  Unknown is not the same as rejected.

stdout is ignored, except that it may hold one JSON object
``{"message": "..."}``; the message (scrubbed, shortened) is kept in
``last_message`` and used as the reason when stderr is empty.

The executable must sit under a directory the *site policy* allows
(``[command] allowed_dirs`` in ``$GLASSKEY_SITE_CONFIG`` or
``/etc/glasskey/site.toml``, a file outside the vault), checked after every
symlink is resolved, and the resolved path is what runs: whoever can write
the vault must not be able to make every operator's process run their code.

One wall-clock deadline covers the whole run. glasskey waits for the
*process*, not for end-of-file on its pipes: a script that starts a daemon
which keeps stdout open and exits 0 has succeeded. At most ``MAX_OUTPUT``
bytes of stdout and of stderr are kept; the rest is read and dropped, so a
script that prints gigabytes costs CPU time within the deadline, never memory.
On timeout the whole process group is killed.

The values travel **only on stdin**: never in argv (world-readable in
``/proc``) and never in the environment. The script must never print them;
glasskey scrubs every 4-character fragment of both values from what it
reports anyway (``core.connectors.base.scrub_fragments``). ``set`` must be
idempotent: it may be called again with the same value after a crash or a lost
reply, and must then succeed.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import subprocess
import time
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from glasskey.core import config
from glasskey.core.connectors.base import (
    Connector,
    ConnectorSettings,
    parse_timeout,
    scrub_fragments,
)
from glasskey.core.errors import ConnectorError, UsageError
from glasskey.core.secret import SecretValue

#: Seconds a script may run (``options["timeout"]``).
DEFAULT_TIMEOUT = 30.0
#: Longest reason taken from a script's stderr or message.
MAX_REASON = 200
#: Bytes of stdout and of stderr kept from a script (the rest is dropped).
MAX_OUTPUT = 8192
#: After the script exits, how long to collect output still in its pipes
#: (a daemon it left behind may hold them open forever).
_DRAIN_GRACE = 0.2
_CHUNK = 65536


def _one_line(text: str, values: tuple[SecretValue | None, ...]) -> str:
    """The first non-empty line of ``text``, scrubbed *before* it is cut (so no
    prefix of a value survives) and stripped of control characters."""
    text = scrub_fragments(text, values)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = "".join(ch if unicodedata.category(ch)[0] != "C" else "?" for ch in line)
    if len(line) > MAX_REASON:
        line = line[: MAX_REASON - 3] + "..."
    return line


def allowed_executable(target: str, policy: config.SitePolicy) -> Path:
    """The resolved executable for ``target``, if the site policy allows it.

    UsageError (one sentence) otherwise. Symlinks are resolved first, so a
    link inside an allowed directory pointing elsewhere is refused, and the
    resolved path is the one that runs (no swap between check and use through
    a link the vault's writers control).
    """
    path = Path(target)
    if not path.is_absolute():
        raise UsageError(f"the command target must be an absolute path, not {target!r}")
    real = Path(os.path.realpath(path))
    if not any(real == d or d in real.parents for d in policy.command_allowed_dirs):
        where = policy.path or config.site_policy_path()
        raise UsageError(
            f"the command target {target!r} is not under a directory the site allows "
            f"([command] allowed_dirs in {where})"
        )
    return real


class CommandConnector(Connector):
    """Runs a site executable with the JSON protocol described in this module."""

    name = "command"

    def __init__(self, settings: ConnectorSettings) -> None:
        super().__init__(settings)
        #: The scrubbed ``{"message": ...}`` of the last run, if the script gave one.
        self.last_message: str | None = None

    @classmethod
    def check_settings(cls, target: str | None, options: Mapping[str, str]) -> None:
        if not target:
            raise UsageError("the command connector needs --target, an executable path")
        allowed_executable(target, config.site_policy())
        parse_timeout(options.get("timeout"), DEFAULT_TIMEOUT, connector="command")

    # ----------------------------------------------------------------- interface

    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        code, reason = self._run("set", new, current)
        if code == 0:
            return
        if code == 1:
            raise ConnectorError(
                f"credential {self._cred!r}: the target refused the change: {reason}"
            )
        raise self._failed(code, reason)

    def verify(self, value: SecretValue) -> bool:
        code, reason = self._run("verify", value, None)
        if code == 0:
            return True
        if code == 1:
            return False
        raise self._failed(code, reason)

    # ----------------------------------------------------------------- internals

    @property
    def _cred(self) -> str:
        return self.settings.credential

    def _failed(self, code: int, reason: str) -> ConnectorError:
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return ConnectorError(
            f"credential {self._cred!r}: the target is unreachable or the command failed "
            f"({how}): {reason}"
        )

    def _executable(self) -> str:
        target = self.settings.target
        if not target:
            raise ConnectorError(
                f"credential {self._cred!r}: the command connector needs a target executable"
            )
        try:
            real = allowed_executable(target, config.site_policy())
        except UsageError as exc:
            raise ConnectorError(f"credential {self._cred!r}: {exc}") from None
        if not real.is_file() or not os.access(real, os.X_OK):
            raise ConnectorError(
                f"credential {self._cred!r}: the command target {target!r} is not an "
                "executable file"
            )
        return str(real)

    def _timeout(self) -> float:
        try:
            return parse_timeout(self.settings.options.get("timeout"), DEFAULT_TIMEOUT,
                                 connector="command")
        except UsageError as exc:
            raise ConnectorError(f"credential {self._cred!r}: {exc}") from None

    def _run(self, action: str, value: SecretValue, current: SecretValue | None) -> tuple[int, str]:
        """Run the script; return its exit status and a scrubbed one-line reason."""
        executable = self._executable()
        timeout = self._timeout()
        values = (value, current)
        payload = (
            json.dumps(
                {
                    "action": action,
                    "credential": self._cred,
                    "value": value.reveal(),
                    "current": current.reveal() if current is not None else None,
                    "options": dict(self.settings.options),
                }
            ).encode("utf-8")
            + b"\n"
        )
        self.last_message = None
        try:
            proc = subprocess.Popen(
                [executable],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as exc:
            raise ConnectorError(
                f"credential {self._cred!r}: cannot run {executable!r}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        try:
            returncode, stdout, stderr = _exchange(proc, payload, time.monotonic() + timeout)
        finally:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
        if returncode is None:
            raise ConnectorError(
                f"credential {self._cred!r}: the target is unreachable or the command "
                f"failed: {executable!r} did not finish within {timeout:g} s"
            )
        message = self._message(stdout, values)
        self.last_message = message
        reason = _one_line(stderr.decode("utf-8", "replace"), values)
        return returncode, reason or message or "no reason given"

    @staticmethod
    def _message(stdout: bytes, values: tuple[SecretValue | None, ...]) -> str | None:
        text = stdout.decode("utf-8", "replace").strip()
        if not text.startswith("{"):
            return None
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return _one_line(doc["message"], values) or None
        return None


def _exchange(proc: subprocess.Popen[bytes], payload: bytes, deadline: float
              ) -> tuple[int | None, bytes, bytes]:
    """Feed ``payload`` to stdin and collect at most ``MAX_OUTPUT`` bytes of each
    output pipe until the process exits (plus a short grace) or the deadline.

    Returns (exit status or None on timeout, stdout head, stderr head). On
    timeout the process group is killed and the process reaped.
    """
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    kept = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    sel = selectors.DefaultSelector()
    to_send = memoryview(payload)
    stdin_fd = proc.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_WRITE)
    for fd in kept:
        sel.register(fd, selectors.EVENT_READ)
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None:
                if not any(k.fd in kept for k in sel.get_map().values()) \
                        or now - exited_at >= _DRAIN_GRACE:
                    return proc.returncode, bytes(kept[proc.stdout.fileno()]), \
                        bytes(kept[proc.stderr.fileno()])
            elif now >= deadline:
                _kill_group(proc)
                return None, b"", b""
            for key, _ in sel.select(0.05):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        n = os.write(fd, to_send[:_CHUNK])
                        to_send = to_send[n:]
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        if exc.errno != errno.EPIPE:
                            raise
                        to_send = to_send[:0]  # the script does not read its stdin
                    if not to_send:
                        sel.unregister(fd)
                        proc.stdin.close()
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    sel.unregister(fd)
                    continue
                buf = kept[fd]
                if len(buf) < MAX_OUTPUT:
                    buf += chunk[: MAX_OUTPUT - len(buf)]
    finally:
        sel.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the script's process group and reap the script (never waiting
    on pipes a stray grandchild might hold)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
