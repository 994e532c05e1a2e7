"""The DEMO panel: the demo operators' passphrases and live TOTP codes.

Shown only for a vault made by ``glasskey demo``; clearly labelled, because
printing passphrases and codes on the screen is exactly what a real vault
must never do.
"""

from __future__ import annotations

from collections.abc import Callable

from glasskey.core.api import totp
from rich.text import Text
from textual.widgets import Static

#: (name, roles, passphrase, TOTP seed)
DemoOperator = tuple[str, tuple[str, ...], str, str]


class DemoPanel(Static):
    """Demo operators with their passphrases and the current TOTP code (ticks each second)."""

    ALLOW_SELECT = True  # demo values only: copy/paste them freely

    def __init__(self, operators: list[DemoOperator], now: Callable[[], float], *,
                 compact: bool = False, id: str | None = None,
                 classes: str | None = None, vault: str = "", second: str = "") -> None:
        super().__init__("", markup=False, id=id, classes=classes)
        self._operators = operators
        #: Where the demo vault is, and how to open a second terminal on it.
        self._vault = vault
        self._second = second
        self._now = now
        self._compact = compact
        self.border_title = "DEMO"

    def on_mount(self) -> None:
        self.tick()
        self.set_interval(1.0, self.tick)

    def render_text(self) -> Text:
        now = self._now()
        left = totp.PERIOD - int(now) % totp.PERIOD
        out = Text()
        if not self._compact:
            # Short lines: the panel is ~36 columns wide at 80x24 and nothing may wrap badly.
            out.append("Throwaway: no real secrets here.\n", "bold")
            if self._second:
                # The vault's path inside the command that opens a second terminal on it,
                # split with a shell line continuation: pasted as it is shown, it runs.
                command, _sep, path = self._second.rpartition(" ")
                out.append("The vault, for a second terminal:\n")
                out.append(f"{command} \\\n  {path}\n")
            elif self._vault:
                out.append(f"vault {self._vault}\n")
        for n, (name, roles, passphrase, seed) in enumerate(self._operators):
            code = totp.code_at(seed, now)
            if n or not self._compact:
                out.append("\n")
            if self._compact:
                out.append(f"{name:<9}", "bold")
                out.append(f" pass {passphrase}  code ")
                out.append(f"{code[:3]} {code[3:]}", "bold reverse")
                out.append(f" {left:>2}s")
            else:
                out.append(name, "bold")
                out.append(f"  {','.join(roles)}\n")
                out.append(f"  pass  {passphrase}\n")
                out.append("  code  ")
                out.append(f"{code[:3]} {code[3:]}", "bold reverse")
                out.append(f"  {left:>2}s left")
        return out

    def tick(self) -> None:
        self.update(self.render_text())
