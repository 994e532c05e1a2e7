"""core/text.py: free-text caps at every service entry point, and visible escaping."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import UsageError
from glasskey.core.text import CAPS, cap, printable
from helpers import make_vault

HUGE = "x" * 70_000


def test_every_free_text_entry_point_refuses_oversized_input(tmp_path: Path) -> None:
    env = make_vault(tmp_path, operators=3)
    alice, bob = env.unlock("alice"), env.unlock("bob")
    env.vault.add_credential(bob, CredentialSpec(name="db"))
    log = env.root / "audit.jsonl"
    before = log.read_bytes()
    calls: list[Callable[[], object]] = [
        lambda: env.vault.request(alice, "db", HUGE, "T", 600),
        lambda: env.vault.request(alice, "db", "r", HUGE, 600),
        lambda: env.vault.issue_onboarding(alice, "dave", HUGE, "T", "c", 3600),
        lambda: env.vault.issue_onboarding(alice, "dave", "r", "T", HUGE, 3600),
        lambda: env.vault.emergency_reveal(alice, "db", "code", HUGE, "T", 600),
        lambda: env.vault.review(bob, "v-x", "concern", HUGE),
    ]
    for call in calls:
        with pytest.raises(UsageError, match="70,000 characters long"):
            call()
    req = env.vault.request(alice, "db", "r", "T", 600)
    before = log.read_bytes()
    with pytest.raises(UsageError, match="deny reason"):
        env.vault.deny(bob, req.id, HUGE)
    assert log.read_bytes() == before  # nothing stored
    assert env.vault.verify_audit().ok


def test_caps_and_escapes() -> None:
    assert cap("a" * CAPS["ticket"], "ticket") == "a" * CAPS["ticket"]
    with pytest.raises(UsageError) as err:
        cap("a" * (CAPS["ticket"] + 1), "ticket")
    assert "aaaa" not in str(err.value)  # the text itself is never echoed
    evil = "a\x1b]52;c;eA==\x07b\x1b[2J\x9b1m\x7f\x00\u202e\nz"
    shown = printable(evil)
    assert shown == "a\\x1b]52;c;eA==\\x07b\\x1b[2J\\x9b1m\\x7f\\x00\\u202e\\x0az"
    assert printable(evil, keep_newlines=True).endswith("\\u202e\nz")
    assert printable("plain ünïcode — ok") == "plain ünïcode — ok"
