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

The values travel **only on stdin**: never in argv (world-readable in
``/proc``) and never in the environment. The script must never print them;
glasskey scrubs any occurrence from what it reports anyway. ``set`` must be
idempotent: it may be called again with the same value after a crash or a lost
reply, and must then succeed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import unicodedata
from pathlib import Path

from core.connectors.base import Connector, ConnectorSettings
from core.errors import ConnectorError
from core.secret import SecretValue

#: Seconds a script may run (``options["timeout"]``).
DEFAULT_TIMEOUT = 30.0
#: Longest reason taken from a script's stderr or message.
MAX_REASON = 200
_SCRUBBED = "<secret>"
#: Grace period to collect output after the process group was killed.
_KILL_GRACE = 5.0


def _scrub(text: str, values: tuple[SecretValue | None, ...]) -> str:
    """``text`` with every occurrence of a value (raw or JSON-escaped) removed."""
    for value in values:
        if value is None or not len(value):
            continue
        plain = value.reveal()
        escaped = json.dumps(plain)[1:-1]
        for form in {plain, escaped}:
            text = text.replace(form, _SCRUBBED)
    return text


def _one_line(text: str, values: tuple[SecretValue | None, ...]) -> str:
    """The first non-empty line of ``text``, scrubbed *before* it is cut (so no
    prefix of a value survives) and stripped of control characters."""
    text = _scrub(text, values)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = "".join(ch if unicodedata.category(ch)[0] != "C" else "?" for ch in line)
    if len(line) > MAX_REASON:
        line = line[: MAX_REASON - 3] + "..."
    return line


class CommandConnector(Connector):
    """Runs a site executable with the JSON protocol described in this module."""

    name = "command"

    def __init__(self, settings: ConnectorSettings) -> None:
        super().__init__(settings)
        #: The scrubbed ``{"message": ...}`` of the last run, if the script gave one.
        self.last_message: str | None = None

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
        path = Path(target)
        if not path.is_absolute():
            raise ConnectorError(
                f"credential {self._cred!r}: the command target must be an absolute path, "
                f"not {target!r}"
            )
        if not path.is_file() or not os.access(path, os.X_OK):
            raise ConnectorError(
                f"credential {self._cred!r}: the command target {target!r} is not an "
                "executable file"
            )
        return str(path)

    def _timeout(self) -> float:
        raw = self.settings.options.get("timeout")
        if raw is None:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise ConnectorError(
                f"credential {self._cred!r}: command option timeout must be a positive "
                "number of seconds"
            )
        return timeout

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
        timed_out = False
        try:
            stdout, stderr = proc.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        if timed_out:
            # Raised outside the except block: TimeoutExpired carries the partial
            # output, unscrubbed, and must not ride along as __context__.
            self._kill(proc)
            raise ConnectorError(
                f"credential {self._cred!r}: the target is unreachable or the command "
                f"failed: {executable!r} did not finish within {timeout:g} s"
            )
        message = self._message(stdout, values)
        self.last_message = message
        reason = _one_line(stderr.decode("utf-8", "replace"), values)
        return proc.returncode, reason or message or "no reason given"

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the script's process group, then reap it without hanging on
        pipes a stray grandchild might still hold."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=_KILL_GRACE)
        except subprocess.TimeoutExpired:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.kill()
            proc.wait()

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
