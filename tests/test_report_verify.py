"""`glasskey report verify FILE`: a signed-off report can be checked, and one byte shows.

The attestation binds the report's SHA-256 *and* the audit head the report
names (seq and line hash), so the report and its attestation can no longer
disagree about what was read (issue 15: "head seq 19" vs "entries: 20").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from checkout_world import World, make_world
from glasskey.core import report as rp
from glasskey.core.errors import IntegrityError
from test_cli import Cli, cli, fresh_step, one_sentence

__all__ = ["cli"]  # the fixture, imported for pytest

HEAD = re.compile(r"head seq (\d+) hash ([0-9a-f]{64})")


def _flip(text: str, needle: str) -> str:
    i = text.index(needle)
    return text[:i] + needle.swapcase() + text[i + len(needle):]


def test_report_verify_through_the_cli(cli: Cli) -> None:
    out = cli.root / "report.md"
    fresh_step()
    r = cli("report", "custody", "--since", "2000-01-01", "--format", "md", "--output",
            str(out), "--attest", *cli.as_("bob", 0))
    assert r.code == 0, r.err
    text = out.read_text()
    seq, head_hash = HEAD.search(text).groups()  # type: ignore[union-attr]
    # The attestation binds the head the report names, not the head at signing time.
    entries = [json.loads(line) for line in cli("audit", "export").out.splitlines()]
    att = entries[-1]
    assert att["event"] == "report.attested"
    assert att["details"]["head_seq"] == att["details"]["entries"] == int(seq)
    assert att["details"]["head_hash"] == head_hash

    r = cli("report", "verify", str(out))
    assert r.code == 0, r.err
    assert att["subject"] in r.out and f"head seq {seq}" in r.out and "bob" in r.out
    r = cli("report", "verify", str(out), "--json")
    assert r.code == 0 and json.loads(r.out)["head_hash"] == head_hash

    # One byte changed anywhere: exit 3, one sentence naming the attestation.
    for needle in ("Checkouts", "VERIFIED"):
        altered = cli.root / f"altered-{needle}.md"
        altered.write_text(_flip(text, needle))
        r = cli("report", "verify", str(altered))
        assert r.code == 3, r.out
        assert one_sentence(r.err) and att["subject"] in r.err and "altered" in r.err
    # A forged head in the text is named as such.
    forged = cli.root / "forged-head.md"
    forged.write_text(text.replace(f"head seq {seq} ", f"head seq {int(seq) + 5} "))
    r = cli("report", "verify", str(forged))
    assert r.code == 3 and f"head seq {int(seq) + 5}" in r.err, r.err
    # A report nobody signed off.
    r = cli("report", "custody", "--since", "2001-01-01", "--format", "md", "--output",
            str(cli.root / "unsigned.md"))
    assert r.code == 0
    r = cli("report", "verify", str(cli.root / "unsigned.md"))
    assert r.code == 3 and "no attestation" in r.err and one_sentence(r.err)
    r = cli("report", "verify")
    assert r.code == 2


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.add("db-root", "CANARY-verify-1")
    req = w.checkout("db-root")
    w.vault.reveal(w.s("alice"), req)
    w.clock.advance(60)
    w.vault.checkin(w.s("alice"), req)
    return w


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_every_format_verifies_and_one_byte_is_caught(world: World, fmt: str) -> None:
    w = world
    since, until = w.clock.now() - 3600, w.clock.now()
    built = rp.build_custody_report(w.vault, since, until)
    text = {"md": rp.render_markdown, "html": rp.render_html, "json": rp.render_json}[fmt](built)
    w.s("carol")  # an unlock (and its entries) between building and signing
    att = rp.attest(w.vault, w.s("carol"), text, fmt, since, until,
                    head_seq=built.audit.head_seq, head_hash=built.audit.head_hash)
    check = rp.verify_report(w.vault, text)
    assert check.attestation.id == att
    assert check.attestation.entries == built.audit.head_seq
    assert check.attestation.head_hash == built.audit.head_hash
    i = len(text) // 2
    altered = text[:i] + ("X" if text[i] != "X" else "Y") + text[i + 1:]
    with pytest.raises(IntegrityError, match=f"altered after it was signed off.*{att}"):
        rp.verify_report(w.vault, altered)


def test_a_head_not_in_the_log_is_refused(world: World) -> None:
    w = world
    since, until = w.clock.now() - 3600, w.clock.now()
    built = rp.build_custody_report(w.vault, since, until)
    text = rp.render_markdown(built)
    rp.attest(w.vault, w.s("carol"), text, "md", since, until,
              head_seq=built.audit.head_seq, head_hash="ab" * 32)
    with pytest.raises(IntegrityError, match="is not in this log"):
        rp.verify_report(w.vault, text)
