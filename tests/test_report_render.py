"""What people typed is inert in every rendering of the report (issue 11).

Reasons, tickets, notes, onboarding fields and the credential argument of a
refused kit use are typed by people, some of them attackers. Rendered by a
real GFM renderer (markdown-it with linkify) the Markdown report must show
them as text: no link, no image, no HTML, no code injection into the table,
no control character. The HTML report escapes them; the JSON report keeps
them as data with the separators escaped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from checkout_world import World, make_world
from glasskey.core import report as rp
from glasskey.core.emergency import encode_part
from glasskey.core.errors import GlasskeyError
from markdown_it import MarkdownIt

DAY = 86400.0
EVIL_REASON = ("[click here](http://evil.example/x) ![pixel](http://evil.example/p.png) "
               "<img src=x onerror=alert(1)> **bold** `code` \x1b]52;c;QUFBQQ==\x07 "
               "line\nbreak\u2028sep \x85nel \x9bcsi &amp; ~~gone~~ $x$")
EVIL_TICKET = "www.evil.example | x"
EVIL_NOTE = "<a href='http://evil.example'>ok</a> mailto:x@evil.example"
EVIL_CRED = "db\n<81>1 2030-01-01T00:00:00Z [x](http://evil.example)"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")

#: Both parts of a kit that was never issued.
WRONG_KIT = encode_part(1, bytes(range(32))) + " " + encode_part(2, bytes(32))


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.add("esc-cred")
    req = w.vault.request(w.s("alice"), "esc-cred", EVIL_REASON, EVIL_TICKET, 600)
    w.vault.approve(w.s("bob"), req.id)
    w.vault.reveal(w.s("alice"), req.id)
    w.clock.advance(60)
    w.vault.checkin(w.s("alice"), req.id)
    with w.vault.store.transaction() as txn:
        txn.record(w.s("carol").signer, "review.recorded", req.id,
                   {"kind": "checkout", "outcome": "concern", "note": EVIL_NOTE,
                    "holder": "alice"})
    try:
        w.vault.emergency_reveal(w.s("alice"), EVIL_CRED, WRONG_KIT,
                                 "outage", "INC-1", 600)
    except GlasskeyError:
        pass
    return w


def _report(w: World) -> rp.CustodyReport:
    return rp.build_custody_report(w.vault, w.clock.now() - DAY, w.clock.now())


def test_markdown_renders_typed_text_as_text(world: World) -> None:
    r = _report(world)
    assert r.kit_refusals, "the refused kit use with the typed credential is in the report"
    md = rp.render_markdown(r)
    assert not CONTROL.search(md)
    html = MarkdownIt("gfm-like").render(md)
    assert "<a " not in html and "<img" not in html and "<strong>" not in html
    assert "<s>" not in html and "<del>" not in html
    assert "evil.example" in html  # shown, not linked
    # Each table row keeps its column count: the typed '|' did not add cells.
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        head = len(re.findall(r"<th[ >]", table.split("</thead>")[0]))
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[-1], re.S):
            assert len(re.findall(r"<td[ >]", row)) == head
    # The injected "record" is one escaped cell, not a new line of the report.
    assert not any(line.startswith("<81>") for line in md.splitlines())
    assert "<code>db\\u000a&lt;81&gt;1 2030" in html


def test_html_escapes_and_shows_controls(world: World) -> None:
    page = rp.render_html(_report(world))
    ET.fromstring(page)
    assert not CONTROL.search(page.replace("\n", ""))
    assert "<img" not in page and "<a " not in page and "onerror=alert" not in page.replace(
        "onerror=alert(1)&gt;", "")
    assert "\\u001b]52" in page and "\\u2028" in page


def test_json_keeps_the_data_and_escapes_separators(world: World) -> None:
    text = rp.render_json(_report(world))
    assert not CONTROL.search(text.replace("\n", ""))
    doc = json.loads(text)
    reasons = [c["reason"] for c in doc["checkouts"]]
    assert EVIL_REASON in reasons  # the data itself is intact
    assert EVIL_CRED in [k["credential"] for k in doc["kit_refusals"]]
