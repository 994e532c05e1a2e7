"""The clipboard a revealed secret goes to, and its clear-after timer.

Why a class of its own: copying a secret must be undone on every path (the
timer, a lock, a quit, the checkout ending), and the three places a copy can
land — the terminal's clipboard through OSC 52, a tmux paste buffer, and a
local tool when a display owns the clipboard — must all be cleared together.
The app holds one ``Clipboard`` and asks it; nothing else touches the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from glasskey.tui.hardening import TmuxBuffers

if TYPE_CHECKING:
    from textual.app import App
    from textual.timer import Timer

#: Local clipboard tools tried after OSC 52, when a display is there to own them.
LOCAL_CLIPBOARDS: tuple[tuple[str, ...], ...] = (
    ("wl-copy",),
    ("xclip", "-selection", "clipboard"),
    ("xsel", "--clipboard", "--input"),
    ("pbcopy",),
)


class Clipboard:
    """Who owns the copy (a request id), until when, and how to take it back."""

    def __init__(self, app: App[None], clear_seconds: float, *, local: bool) -> None:
        self.app = app
        self.clear_seconds = clear_seconds
        self.local = local
        self.owner: str | None = None
        self.until = 0.0
        self._timer: Timer | None = None
        self._tmux = TmuxBuffers()

    def copy(self, owner: str, text: str) -> None:
        self.app.copy_to_clipboard(text)
        self._local_copy(text)
        self._tmux.copied(text)
        self.owner = owner
        self.until = time.monotonic() + self.clear_seconds
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.app.set_timer(self.clear_seconds, self.clear)

    def clear(self) -> None:
        """Overwrite the clipboard if it still holds a value this app put there."""
        if self.owner is None:
            return
        self.owner = None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.app.copy_to_clipboard("")
        self._local_copy("")
        # tmux keeps an OSC 52 copy in a paste buffer and ignores the empty OSC 52: delete it.
        self._tmux.clear()

    def tick(self) -> None:
        """The timer's backstop: a suspended process may have missed it."""
        if self.owner is not None and time.monotonic() >= self.until:
            self.clear()

    def status(self, owner: str) -> str:
        if self.owner != owner:
            return ""
        left = max(0, int(self.until - time.monotonic() + 0.999))
        return f"Clipboard: holds this secret; cleared in {left} s"

    def _local_copy(self, text: str) -> None:
        if not self.local:
            return
        has_display = bool(os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY")) \
            or sys.platform == "darwin"
        if not has_display:
            return
        for command in LOCAL_CLIPBOARDS:
            if shutil.which(command[0]) is None:
                continue
            try:
                subprocess.run(command, input=text.encode("utf-8"), timeout=2,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
            except (OSError, subprocess.SubprocessError):
                continue
            return
