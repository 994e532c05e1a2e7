"""The holder during their own lease: re-display after re-authenticating, and extend within
the credential's maximum (issue 11). Both audited as their own events."""

from __future__ import annotations

from pathlib import Path

import pytest
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import PolicyError, UsageError
from glasskey.core.models import Policy
from glasskey.core.secret import SecretValue
from helpers import VaultEnv, file_store, make_vault

VALUE = "redisplay-value-7Qx"


def events(env: VaultEnv) -> list[str]:
    return [e["event"] for e in file_store(env.vault).audit.entries()]


def checked_out(tmp_path: Path, max_duration: int = 3600) -> tuple[VaultEnv, str]:
    env = make_vault(tmp_path, operators=3)
    bob = env.unlock("bob")
    env.vault.add_credential(bob, CredentialSpec(
        name="db", secret=SecretValue(VALUE), policy=Policy(max_duration=max_duration)))
    alice = env.unlock("alice")
    req = env.vault.request(alice, "db", "outage", "INC-1", 600)
    env.vault.approve(env.unlock("bob"), req.id)
    assert env.vault.reveal(env.unlock("alice"), req.id).reveal() == VALUE
    return env, req.id


def test_the_holder_sees_the_secret_again_after_re_authenticating(tmp_path: Path) -> None:
    env, req_id = checked_out(tmp_path)
    # a "restart": another Vault object, a fresh unlock
    again = env.reopen()
    session = env.unlock("alice", again)
    assert again.redisplay(session, req_id).reveal() == VALUE
    evs = events(env)
    assert evs.count("checkout.revealed") == 1 and evs.count("checkout.redisplayed") == 1
    assert env.vault.verify_audit().ok


def test_only_the_holder_and_only_during_the_lease(tmp_path: Path) -> None:
    env, req_id = checked_out(tmp_path)
    with pytest.raises(PolicyError, match="only the holder"):
        env.vault.redisplay(env.unlock("carol"), req_id)
    env.clock.advance(601)
    with pytest.raises(PolicyError, match="lease"):
        env.vault.redisplay(env.unlock("alice"), req_id)
    assert "checkout.redisplayed" not in events(env)
    assert events(env).count("checkout.refused") == 2


def test_after_check_in_nothing_is_shown(tmp_path: Path) -> None:
    env, req_id = checked_out(tmp_path)
    env.vault.checkin(env.unlock("alice"), req_id)
    with pytest.raises(PolicyError):
        env.vault.redisplay(env.unlock("alice"), req_id)


def test_extend_within_the_maximum_and_not_beyond(tmp_path: Path) -> None:
    env, req_id = checked_out(tmp_path, max_duration=1800)
    before = env.vault.checkout(req_id).lease_expires
    assert before is not None
    co = env.vault.extend_lease(env.unlock("alice"), req_id, 900)
    assert co.lease_expires == before + 900
    assert "checkout.extended" in events(env)
    with pytest.raises(PolicyError, match="at most 5m00s more"):
        env.vault.extend_lease(env.unlock("alice"), req_id, 600)
    with pytest.raises(UsageError):
        env.vault.extend_lease(env.unlock("alice"), req_id, 0)
    with pytest.raises(PolicyError, match="only the holder"):
        env.vault.extend_lease(env.unlock("carol"), req_id, 60)
    assert env.vault.checkout(req_id).lease_expires == before + 900
