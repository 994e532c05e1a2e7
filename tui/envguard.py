"""Textual's debug switches are turned off before Textual is imported.

Why: Textual reads its switches from the environment when it is first
imported (``textual.constants``, ``App.__init__``). A shared workstation's
profile, or a colleague's ``export`` left in a tmux session, is enough to set
them, and several record exactly what glasskey exists to protect:

* ``TEXTUAL_LOG`` writes every key event (passphrases, TOTP codes) to a file;
* ``TEXTUAL=devtools,debug`` (with ``TEXTUAL_DEVTOOLS_HOST/PORT``) streams
  the app's log and screens to whatever listens on that port;
* ``TEXTUAL_SCREENSHOT*`` saves an SVG of the screen, a revealed secret
  included;
* ``TEXTUAL_PRESS`` types keys into the app, ``TEXTUAL_DRIVER`` imports a
  module named in the environment (code execution) as the terminal driver.

So every ``TEXTUAL*`` variable that is not on a short list of cosmetic ones
is removed from the environment (children such as connector commands never
see it either), with a one-line warning on stderr naming what was removed.
Screen captures are also disabled on the App class itself
(:func:`disable_screenshots`), so no code path can write one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

#: Textual variables that only change how the app looks or feels.
COSMETIC = frozenset({
    "TEXTUAL_ANIMATIONS", "TEXTUAL_THEME", "TEXTUAL_COLOR_SYSTEM", "TEXTUAL_FPS",
    "TEXTUAL_SMOOTH_SCROLL", "TEXTUAL_DIM_FACTOR", "TEXTUAL_DISABLE_KITTY_KEY",
    "TEXTUAL_SPEEDUPS",
})


def is_debug_switch(name: str) -> bool:
    """Every Textual variable that is not cosmetic (``TEXTUAL`` itself included)."""
    upper = name.upper()
    return (upper == "TEXTUAL" or upper.startswith("TEXTUAL_")) and upper not in COSMETIC


def scrub(environ: MutableMapping[str, str] | None = None,
          stderr: TextIO | None = None, *, quiet: bool = False) -> list[str]:
    """Remove Textual's debug switches from ``environ``; warn on ``stderr``; return the names.

    ``quiet`` (the CLI's commands, which never load Textual) removes without a
    warning: there is nothing to warn about, and a script's stderr stays one
    sentence.
    """
    env = os.environ if environ is None else environ
    removed = sorted(name for name in env if is_debug_switch(name))
    for name in removed:
        del env[name]
    if removed and not quiet:
        late = " (Textual was already loaded: restart glasskey)" if "textual" in sys.modules \
            else ""
        out = stderr if stderr is not None else sys.stderr
        out.write(f"glasskey: WARNING: removed Textual debug switch(es) {', '.join(removed)} "
                  "from the environment: they can record keystrokes (passphrases, codes) or "
                  f"the screen (revealed secrets){late}\n")
        out.flush()
    return removed


def _refused(*_args: Any, **_kwargs: Any) -> None:
    return None


def disable_screenshots() -> None:
    """No screen capture can reach a file: save/deliver/action_screenshot do nothing.

    ``export_screenshot`` (an SVG string in memory) stays: tests render with it,
    and nothing of it reaches a disk unless one of these methods writes it.
    """
    from textual.app import App

    App.save_screenshot = _refused  # type: ignore[assignment,method-assign]
    App.deliver_screenshot = _refused  # type: ignore[assignment,method-assign]
    App.action_screenshot = _refused  # type: ignore[assignment,method-assign]


__all__ = ["COSMETIC", "disable_screenshots", "is_debug_switch", "scrub"]
