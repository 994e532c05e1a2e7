"""The TUI's last line of defence against terminal injection.

Whatever a screen forgot to pass through :func:`core.text.printable`, no
control character in a widget's text reaches the terminal: each becomes a
visible one-cell symbol (ESC shows as ␛).
"""

from __future__ import annotations

from glasskey.core.api import has_controls
from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter


def _picture(ch: str) -> str:
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟ (␛ for ESC)
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"  # C1 and Unicode format controls: the replacement character


class ControlEscapeFilter(LineFilter):
    """Replace any control character left in rendered text with a visible symbol.

    One cell per character, so a line keeps its width; the line is cut back to
    the width it was laid out with (a control character measures zero cells).
    """

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not any(has_controls(seg.text) for seg in segments if not seg.control):
            return segments
        width = sum(seg.cell_length for seg in segments)
        out: list[Segment] = []
        for seg in segments:
            if seg.control or not has_controls(seg.text):
                out.append(seg)
                continue
            text = "".join(_picture(c) if has_controls(c) else c for c in seg.text)
            out.append(Segment(text, seg.style))
        return Segment.adjust_line_length(out, width)
