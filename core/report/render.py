"""The Markdown and JSON renderings of a custody report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from glasskey.core.clock import iso
from glasskey.core.exports import escape_controls, escape_json_text
from glasskey.core.report.model import CustodyReport
from glasskey.core.report.rows import (
    SECTIONS,
    _audit_line,
    _matrix_table,
    _rows_limited,
    _section_rows,
    _summary_items,
)
from glasskey.core.report.values import _s

#: Characters that can start Markdown markup inside a table cell (links, images,
#: emphasis, code, HTML, entities, strike-through, math): each gets a backslash.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!<>|~&$])")
#: What GFM turns into a link on its own (autolinks, linkify): such a cell is
#: shown as a code span, where nothing is a link.
_MD_LINKY = re.compile(r"(?i)://|www\.|mailto:|xmpp:|@")


def _md(value: Any) -> str:
    """A table cell that renders as the literal text: no markup, no link, no control.

    Control characters (newlines included) are shown as ``\\uXXXX``; a cell a
    renderer could linkify becomes a code span; otherwise every character
    that could start markup gets a backslash, so ``[x](http://y)`` or
    ``![i](y)`` typed into a reason stays text.
    """
    text = escape_controls(_s(value))
    if not text:
        return " "
    if _MD_LINKY.search(text):
        run = max((len(m) for m in re.findall(r"`+", text)), default=0)
        fence = "`" * (run + 1)
        return f"{fence} {text.replace('|', chr(92) + '|')} {fence}"
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_table(head: list[str], rows: Iterable[list[Any]]) -> list[str]:
    """A Markdown table; the head is ours, every body cell is escaped."""
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out.extend("| " + " | ".join(_md(c) for c in row) + " |" for row in rows)
    return out


def render_markdown(report: CustodyReport) -> str:
    """The report as GitHub-flavoured Markdown: every cell literal text (see _md)."""
    r = report
    out = [
        "# glasskey custody review report", "",
        f"- Vault: `{r.vault_id}`",
        f"- Period: {iso(r.since)} .. {iso(r.until)}",
        f"- Generated: {iso(r.generated_at)}",
        f"- Audit log: {_md(_audit_line(r))}",
        f"- Reviews are overdue after {r.review_due_days:g} days", "",
        "## Summary", "",
    ]
    out += _md_table(["Item", "Count"], [[k, v] for k, v in _summary_items(r)])
    tables = _section_rows(r)
    for key, title, note in SECTIONS:
        head, rows = tables[key]
        out += ["", f"## {title}", ""]
        if note:
            out += [note, ""]
        if key == "credentials" and r.credential_matrix:
            out += _md_table(*_matrix_table(r))
            out.append("")
        if not rows:
            out.append("None.")
            continue
        shown, more = _rows_limited(rows)
        out += _md_table(head, shown)
        if more:
            out += ["", f"... and {more} more rows (see the JSON report)."]
    out += ["", "---", "No secret value appears in this report: the audit log records none.",
            ""]
    return "\n".join(out)


def render_json(report: CustodyReport) -> str:
    """Machine-readable report: sorted keys, instants as RFC 3339 UTC."""
    return escape_json_text(json.dumps(report.to_doc(), sort_keys=True, indent=2,
                                       ensure_ascii=False)) + "\n"

