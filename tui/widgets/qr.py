"""A QR code drawn with half blocks (segno), for a recovery code or a TOTP URI.

segno's compact terminal output draws the *light* modules as blocks, so the
widget paints light text on a black background (whatever the theme) to keep
the code scannable. Plain text, never markup.
"""

from __future__ import annotations

import io

from textual.widgets import Static


def qr_text(data: str) -> str:
    """The QR code of ``data`` as lines of half-block characters."""
    import segno

    out = io.StringIO()
    segno.make(data).terminal(out=out, compact=True)
    return out.getvalue().rstrip("\n")


class QrCode(Static):
    """A scannable QR code (light modules as blocks on black)."""

    ALLOW_SELECT = False

    DEFAULT_CSS = """
    QrCode {
        width: auto;
        height: auto;
        color: white;
        background: black;
    }
    """

    def __init__(self, data: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(qr_text(data), markup=False, id=id, classes=classes)
