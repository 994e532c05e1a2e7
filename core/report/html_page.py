"""The HTML rendering: one self-contained page with an SVG custody timeline per credential."""

from __future__ import annotations

import html
from typing import Any

from glasskey.core.clock import iso
from glasskey.core.exports import escape_controls
from glasskey.core.report.model import CustodyReport
from glasskey.core.report.rows import (
    SECTIONS,
    _approvers,
    _audit_line,
    _matrix_table,
    _rows_limited,
    _section_rows,
    _summary_items,
    _t,
)
from glasskey.core.report.rules import DAY, MAX_ROWS
from glasskey.core.report.values import _s

#: Holders' colours in the timeline (Okabe-Ito first); emergency-kit use is always red.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#6B4C9A",
           "#8C6D31", "#117733", "#882255", "#44AA99", "#999933")
EMERGENCY_COLOUR = "#C00000"

CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;
color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #ccc;padding-bottom:3px}
table{border-collapse:collapse;margin:6px 0;font-size:12px}
th,td{border:1px solid #d0d0d0;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f2f5}tr:nth-child(even) td{background:#fafafa}
.meta td{border:none;padding:1px 10px 1px 0;font-size:13px}
.ok{color:#0a6b2a;font-weight:600}.bad{color:#b00000;font-weight:700}
tr.sev-high td{background:#fde2e2}tr.sev-medium td{background:#fff3d6}
.flag{color:#b00000;font-weight:600}.note{color:#555;font-size:12px;margin:2px 0 6px}
.summary{display:flex;flex-wrap:wrap;gap:8px}
.card{border:1px solid #d0d0d0;border-radius:4px;padding:6px 10px;min-width:120px}
.card b{display:block;font-size:18px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
figure{margin:4px 0 10px}figcaption{font-size:12px;font-weight:600}
svg text{font-family:system-ui,sans-serif}
"""


def _h(value: Any) -> str:
    """HTML text: escaped, with control characters shown as ``\\uXXXX``."""
    return html.escape(escape_controls(_s(value)), quote=True)


def _colours(report: CustodyReport) -> dict[str, str]:
    holders = sorted({c.requester for c in report.checkouts if c.revealed and c.requester})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(holders)}


def _ticks(since: float, until: float) -> list[float]:
    span = until - since
    step = DAY
    for candidate in (3600.0, 6 * 3600.0, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY,
                      91 * DAY, 365 * DAY):
        step = candidate
        if span / candidate <= 12:
            break
    first = (since // step + 1) * step if since % step else since
    ticks = []
    t = first
    while t <= until:
        ticks.append(t)
        t += step
    return ticks


def _tick_label(t: float, span: float) -> str:
    stamp = iso(t)
    return stamp[5:16].replace("T", " ") if span <= 2 * DAY else stamp[:10]


def timeline_svg(report: CustodyReport, credential: str, width: int = 1000) -> str:
    """One credential's custody over the period: who held it from when to when.

    Solid bars are custody (reveal -> check-in or lease end), in the holder's
    colour; the lighter tail runs to the rotation that ended the exposure; a
    dashed outline marks custody still open at the end of the period; red
    outlines mark emergency-kit uses; red crosses mark failed rotations and
    grey ticks requests that released nothing (denied, cancelled, expired).
    """
    colours = _colours(report)
    left, right, lane_y, lane_h = 8, 8, 18, 20
    plot = width - left - right
    since, until = report.since, report.until
    span = max(until - since, 1.0)

    def x(t: float) -> float:
        return left + plot * (min(max(t, since), until) - since) / span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="62" '
        f'viewBox="0 0 {width} 62" role="img" aria-label="custody of {_h(credential)}">',
        f"<title>custody of {_h(credential)}</title>",
        f'<rect x="{left}" y="{lane_y - 2}" width="{plot}" height="{lane_h + 4}" '
        'fill="#f4f5f7" stroke="#d8d8d8"/>',
    ]
    axis_y = lane_y + lane_h + 6
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot}" y2="{axis_y}" '
                 'stroke="#888"/>')
    for t in _ticks(since, until):
        tx = x(t)
        parts.append(f'<line x1="{tx:.1f}" y1="{lane_y - 2}" x2="{tx:.1f}" y2="{axis_y + 4}" '
                     'stroke="#ccc" stroke-width="0.8"/>')
        parts.append(f'<text x="{tx:.1f}" y="{axis_y + 15}" font-size="10" fill="#555" '
                     f'text-anchor="middle">{_h(_tick_label(t, span))}</text>')
    for c in report.checkouts:
        if c.credential != credential:
            continue
        if c.held_from is None:
            if c.requested_at is not None and since <= c.requested_at <= until:
                rx = x(c.requested_at)
                parts.append(
                    f'<line x1="{rx:.1f}" y1="{lane_y - 6}" x2="{rx:.1f}" y2="{lane_y - 1}" '
                    f'stroke="#777" stroke-width="1.5"><title>{_h(c.id)} {_h(c.requester)} '
                    f'{_h(c.outcome)} {_h(_t(c.requested_at))}</title></line>')
            continue
        end = c.held_to if c.held_to is not None else until
        if c.held_from > until or end < since:
            continue
        x0, x1 = x(c.held_from), x(end)
        w = max(x1 - x0, 3.0)
        colour = colours.get(c.requester, "#666")
        tip = (f"{c.id}: {c.requester} held {c.credential} {_t(c.held_from)} .. "
               f"{_t(c.held_to) if c.held_to else 'still held'}; approved by "
               f"{_approvers(c)}; {c.reason} ({c.ticket}); rotation {c.rotation.text()}")
        rot_at = c.rotation.at if c.rotation.outcome == "committed" else None
        tail_end = rot_at if rot_at is not None else (
            until if c.held_to is not None else None)
        if tail_end is not None and c.held_to is not None and tail_end > c.held_to:
            tx0, tx1 = x(c.held_to), x(tail_end)
            if tx1 - tx0 >= 1:
                parts.append(f'<rect x="{tx0:.1f}" y="{lane_y + 4}" width="{tx1 - tx0:.1f}" '
                             f'height="{lane_h - 8}" fill="{colour}" fill-opacity="0.3">'
                             f"<title>{_h(c.id)}: exposure until rotation "
                             f"{_h(_t(rot_at) if rot_at else 'NOT ROTATED')}</title></rect>")
        stroke = ""
        if c.emergency:
            stroke = f' stroke="{EMERGENCY_COLOUR}" stroke-width="2.5"'
        elif c.held_to is None:
            stroke = ' stroke="#222" stroke-width="1.2" stroke-dasharray="3 2"'
        parts.append(f'<rect x="{x0:.1f}" y="{lane_y}" width="{w:.1f}" height="{lane_h}" '
                     f'fill="{colour}"{stroke}><title>{_h(tip)}</title></rect>')
        label = f"{c.requester}" + (" (EMERGENCY)" if c.emergency else "")
        if w >= 7 * len(label) + 6:
            parts.append(f'<text x="{x0 + 3:.1f}" y="{lane_y + 14}" font-size="11" '
                         f'fill="#fff">{_h(label)}</text>')
        elif c.emergency:
            parts.append(f'<text x="{x0 + w / 2:.1f}" y="{lane_y - 4}" font-size="11" '
                         f'font-weight="700" fill="{EMERGENCY_COLOUR}" text-anchor="middle">!'
                         "</text>")
    for f in report.rotation_failures:
        if f.credential != credential:
            continue
        fx = x(f.at)
        parts.append(
            f'<path d="M{fx - 4:.1f},{lane_y - 9} l8,8 m0,-8 l-8,8" stroke="{EMERGENCY_COLOUR}" '
            f'stroke-width="2"><title>rotation failed {_h(_t(f.at))}: {_h(f.error)}</title>'
            "</path>")
    parts.append("</svg>")
    return "".join(parts)


def _html_table(head: list[str], rows: list[list[Any]], row_class: list[str] | None = None
                ) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_h(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(report: CustodyReport) -> str:
    """One self-contained page: inline CSS and SVG, no script, no network.

    The document is also well-formed XML (tests parse it with ElementTree), and
    its Content-Security-Policy forbids every fetch and script.
    """
    r = report
    audit_cls = "ok" if r.audit.ok else "bad"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"/>',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\"/>",
        f"<title>glasskey custody report {_h(iso(r.since)[:10])} .. "
        f"{_h(iso(r.until)[:10])}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>glasskey custody review report</h1>",
        '<table class="meta"><tbody>',
        f"<tr><td>Vault</td><td><code>{_h(r.vault_id)}</code></td></tr>",
        f"<tr><td>Period</td><td>{_h(iso(r.since))} .. {_h(iso(r.until))}</td></tr>",
        f"<tr><td>Generated</td><td>{_h(iso(r.generated_at))}</td></tr>",
        f'<tr><td>Audit log</td><td class="{audit_cls}" id="audit-status">'
        f"{_h(_audit_line(r))}</td></tr>",
        f"<tr><td>Review due</td><td>{r.review_due_days:g} days after an item ends</td></tr>",
        "</tbody></table>",
        '<h2>Summary</h2><div class="summary">',
        *(f'<div class="card">{_h(k)}<b>{_h(v)}</b></div>' for k, v in _summary_items(r)),
        "</div>",
    ]
    tables = _section_rows(r)
    for key, title, note in SECTIONS:
        head, rows = tables[key]
        out.append(f'<h2 id="{key}">{_h(title)}</h2>')
        if note:
            out.append(f'<p class="note">{_h(note)}</p>')
        if key == "checkouts":
            out.append(_timelines(r))
        if key == "credentials" and r.credential_matrix:
            out.append(_html_table(*_matrix_table(r)))
        if not rows:
            out.append("<p>None.</p>")
            continue
        shown, more = _rows_limited(rows)
        classes: list[str] | None = None
        if key == "findings":
            classes = [f"sev-{f.severity}" for f in r.findings[:MAX_ROWS]]
        elif key == "pairs":
            classes = ["sev-medium" if p.flagged else "" for p in r.pairs[:MAX_ROWS]]
        out.append(_html_table(head, shown, classes))
        if more:
            out.append(f"<p>... and {more} more rows (see the JSON report).</p>")
    out.append('<p class="note">No secret value appears in this report: the audit log '
               "records none.</p></body></html>")
    return "\n".join(out) + "\n"


def _timelines(r: CustodyReport) -> str:
    creds = sorted({c.credential for c in r.checkouts if c.revealed}
                   | {f.credential for f in r.rotation_failures})
    if not creds:
        return ""
    colours = _colours(r)
    out = ['<h3>Custody timeline</h3><p class="note">Solid bar: held (reveal to check-in or '
           "lease end), in the holder's colour; light tail: exposure until the rotation that "
           "ended it; dashed outline: still held at the end of the period; red outline or !: "
           "emergency-kit use; red cross: failed rotation; grey tick: request that released "
           'nothing. Hover a bar for details.</p><div class="legend">']
    out += [f'<span><i style="background:{c}"></i>{_h(n)}</span>' for n, c in colours.items()]
    out.append("</div>")
    for cred in creds[:MAX_ROWS]:
        n = sum(1 for c in r.checkouts if c.credential == cred and c.revealed)
        out.append(f'<figure class="timeline" data-credential="{_h(cred)}"><figcaption>'
                   f"{_h(cred)} ({n} custody interval{'s' if n != 1 else ''})</figcaption>"
                   f"{timeline_svg(r, cred)}</figure>")
    return "".join(out)

