"""Running a site hook (a notification channel) without letting it stall anyone.

The hook is the site's own program (``[notify] command``; core/notify.py sends it
every notification event). It is run:

* **after the vault lock is released**: a hook that hangs, or leaves a child
  behind, must not make other operators see "the vault is busy" during an
  emergency, which is exactly when they need the vault;
* **in its own process group** (``start_new_session``), killed as a group
  when the deadline passes, so a child it started cannot outlive it;
* **only from an allowed directory**: like a ``command`` connector target it
  must sit under the site policy's ``[command] allowed_dirs`` (outside the
  vault; symlinks resolved), since ``glasskey.toml`` beside the vault can be
  written by whoever can write the vault;
* **waited for as a process**, never for end-of-file on its pipes: its
  output goes to /dev/null, so a daemon it forks that keeps a pipe open
  cannot hold the caller (the emergency user waiting for the secret).

It gets the event as one JSON document on stdin. A failure is reported to the
caller as a short reason (recorded in the audit log), never raised: the
emergency already happened and is audited; the hook only makes it louder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from glasskey.core import config
from glasskey.core.connectors.command import allowed_executable
from glasskey.core.errors import UsageError

#: Seconds a hook may run before its process group is killed.
DEFAULT_TIMEOUT = 10.0


def run(command: str, payload: bytes, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """Run ``command`` (no shell, no arguments) with ``payload`` on stdin.

    None on exit status 0; otherwise a short, secret-free reason.
    """
    try:
        executable = allowed_executable(command, config.site_policy())
    except UsageError as exc:
        return f"the hook was not run: {exc}"
    try:
        proc = subprocess.Popen(
            [str(executable)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )
    except OSError as exc:
        return f"cannot run the hook: {exc.strerror or type(exc).__name__}"
    stdin = proc.stdin
    assert stdin is not None

    def feed() -> None:
        # In a thread: a hook that never reads a payload larger than the pipe
        # buffer must not block us past the deadline.
        try:
            stdin.write(payload)
            stdin.close()
        except (OSError, ValueError):
            pass

    feeder = threading.Thread(target=feed, daemon=True, name="glasskey-hook-stdin")
    feeder.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        code = None
    feeder.join(1)  # the process is gone: the write ends with EPIPE at once
    if code is None:
        return f"the hook did not finish within {timeout:g} s (killed)"
    if code != 0:
        return f"the hook failed (exit status {code})" if code > 0 else \
            f"the hook was killed by signal {-code}"
    return None
