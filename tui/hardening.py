"""Process hygiene for the glasskey front ends (CLI and TUI), without textual.

* :func:`harden_process` runs first thing: no core dump (``RLIMIT_CORE`` 0)
  and not dumpable (``PR_SET_DUMPABLE`` 0), so a crash or a same-user
  ``ptrace``/``/proc/PID/mem`` reader does not get a revealed secret or an
  unlocked operator key out of this process's memory.
* :class:`TmuxBuffers` makes the clipboard clear real under tmux, which keeps
  an OSC 52 copy in its own paste buffer and ignores the empty OSC 52 clear.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import resource
import shutil
import subprocess
import sys

PR_SET_DUMPABLE = 4


def harden_process() -> list[str]:
    """Disable core dumps and make the process non-dumpable; return what failed.

    Best effort by design (a container may refuse setrlimit): the caller may
    report the failures, but a front end must still start.
    """
    failed: list[str] = []
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError):
        failed.append("RLIMIT_CORE")
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
                failed.append("PR_SET_DUMPABLE")
        except OSError:
            failed.append("PR_SET_DUMPABLE")
    return failed


class TmuxBuffers:
    """Delete the tmux paste buffers that hold a value this app copied.

    Only a digest of the copied value is kept, never the value, so the clear
    can find the buffer later without the app holding the secret any longer.
    """

    def __init__(self) -> None:
        self._digest: bytes | None = None

    @staticmethod
    def active() -> bool:
        return bool(os.environ.get("TMUX")) and shutil.which("tmux") is not None

    def copied(self, text: str) -> None:
        self._digest = hashlib.sha256(text.encode("utf-8")).digest() if text else None

    def clear(self) -> int:
        """Delete every tmux buffer holding the copied value; return how many."""
        digest, self._digest = self._digest, None
        if digest is None or not self.active():
            return 0
        deleted = 0
        try:
            names = subprocess.run(["tmux", "list-buffers", "-F", "#{buffer_name}"],
                                   capture_output=True, timeout=2, check=False
                                   ).stdout.decode("utf-8", "replace").split()
            for name in names:
                shown = subprocess.run(["tmux", "show-buffer", "-b", name], capture_output=True,
                                       timeout=2, check=False).stdout
                if hashlib.sha256(shown).digest() == digest:
                    subprocess.run(["tmux", "delete-buffer", "-b", name], capture_output=True,
                                   timeout=2, check=False)
                    deleted += 1
        except (OSError, subprocess.SubprocessError):
            return deleted
        return deleted
