"""Exceptions and reviews (issue 6): review queue, onboarding secrets, the
emergency kit and offboarding (catalogue row R3)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from checkout_world import World, decrypt_version, make_world
from glasskey.core.crypto import shamir
from glasskey.core.envelope import open_own_share, recover_dek
from glasskey.core.errors import IntegrityError, PolicyError, UsageError
from helpers import file_store


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path, ("alice", "bob", "carol", "dave"))
    world.add("db-root", "v1-value")
    return world


def used_checkout(w: World, cred: str = "db-root") -> str:
    req = w.checkout(cred)
    w.vault.reveal(w.s("alice"), req)
    w.vault.checkin(w.s("alice"), req)
    return req


def events(w: World, name: str) -> list[dict[str, object]]:
    return [e for e in file_store(w.vault).audit.entries() if e["event"] == name]


# -- review queue ------------------------------------------------------------------------------
def test_finished_checkout_waits_for_review_by_someone_else(w: World) -> None:
    req = used_checkout(w)
    queue = w.vault.review_queue()
    assert [(i.id, i.kind, i.holder) for i in queue] == [(req, "checkout", "alice")]
    with pytest.raises(UsageError, match="note"):
        w.vault.review(w.s("carol"), req, "concern", "")
    # carol: neither the holder (alice) nor the approver (bob).
    w.vault.review(w.s("carol"), req, "ok", "ticket matches the outage")
    assert w.vault.review_queue() == []
    assert w.vault.checkout(req).review["status"] == "ok"
    assert events(w, "review.recorded")[0]["details"]["outcome"] == "ok"  # type: ignore[index]


def test_the_holder_can_never_review_their_own_checkout(w: World) -> None:
    req = w.vault.request(w.s("bob"), "db-root", "r", "t", 60).id
    w.vault.approve(w.s("carol"), req)
    w.vault.reveal(w.s("bob"), req)
    w.vault.checkin(w.s("bob"), req)
    with pytest.raises(PolicyError, match="own use"):
        w.vault.review(w.s("bob"), req, "ok", "")
    assert events(w, "review.refused")
    assert [i.id for i in w.vault.review_queue()] == [req]


def test_unreviewed_items_become_overdue(w: World) -> None:
    req = used_checkout(w)
    assert not w.vault.review_queue()[0].overdue(w.clock.now())
    w.clock.advance(8 * 24 * 3600)
    item = w.vault.review_queue()[0]
    assert item.id == req and item.overdue(w.clock.now())
    assert any("review overdue" in a for a in [x.message for x in w.vault.alerts()])


# -- onboarding secrets ---------------------------------------------------------------------
def test_onboarding_secret_is_shown_once_and_dead_after_activation(w: World) -> None:
    onb = w.vault.issue_onboarding(w.s("alice"), "new-hire-42", "first day", "HR-9",
                                   "in person, badge checked")
    with pytest.raises(PolicyError):
        w.vault.reveal(w.s("alice"), onb.id)  # not approved yet
    w.vault.approve(w.s("bob"), onb.id)
    value = w.vault.reveal(w.s("alice"), onb.id).reveal()
    assert len(value) == 20
    with pytest.raises(PolicyError, match="already revealed"):
        w.vault.reveal(w.s("alice"), onb.id)
    done = w.vault.activate_onboarding(w.s("alice"), onb.id)
    assert done.state == "closed" and done.closed_reason == "activated"
    cred = w.vault.credential(onb.cred_name)
    assert cred.status == "revoked"
    with pytest.raises(PolicyError, match="onboarding"):
        w.vault.request(w.s("alice"), onb.cred_name, "again", "T", 60)
    with pytest.raises(PolicyError, match="already"):
        w.vault.activate_onboarding(w.s("alice"), onb.id)
    assert [i.kind for i in w.vault.review_queue()] == ["onboarding"]
    names = [e["event"] for e in file_store(w.vault).audit.entries()]
    for ev in ("onboarding.issued", "onboarding.approved", "onboarding.revealed",
               "onboarding.activated", "onboarding.revoked"):
        assert ev in names


def test_onboarding_secret_expires_unused_with_an_alert(w: World) -> None:
    onb = w.vault.issue_onboarding(w.s("alice"), "svc-batch", "new pipeline", "CHG-7",
                                   "sealed envelope", expires_in=3600)
    w.vault.approve(w.s("bob"), onb.id)
    w.vault.reveal(w.s("alice"), onb.id)
    undelivered = w.vault.issue_onboarding(w.s("carol"), "other", "r", "t", "c")
    w.vault.approve(w.s("bob"), undelivered.id)
    with pytest.raises(PolicyError, match="never delivered"):
        w.vault.activate_onboarding(w.s("carol"), undelivered.id)
    w.clock.advance(3601)
    # Clock rules: after an hour with no entry, the first sweep only records that
    # its clock is ahead of the chain; the next sweep (which sees that) acts.
    w.vault.sweep(w.s("dave"))
    report = w.vault.sweep(w.s("dave"))
    assert onb.id in report.expired
    co = w.vault.checkout(onb.id)
    assert co.state == "closed" and co.closed_reason == "expired"
    assert w.vault.credential(onb.cred_name).status == "revoked"
    assert events(w, "onboarding.expired")
    assert onb.id in [i.id for i in w.vault.review_queue()]


def test_onboarding_expiry_is_bounded(w: World) -> None:
    with pytest.raises(UsageError, match="expiry"):
        w.vault.issue_onboarding(w.s("alice"), "x", "r", "t", "c", expires_in=10 * 86400)


# -- emergency kit --------------------------------------------------------------------------
def test_emergency_kit_opens_once_is_burned_and_stays_loud(w: World, tmp_path: Path) -> None:
    hook_out = tmp_path / "notified.json"
    hook = tmp_path / "notify.sh"
    hook.write_text(f"#!/bin/sh\ncat > {hook_out}\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    (w.root / "glasskey.toml").write_text(f'[notify]\ncommand = "{hook}"\n')
    kit = w.vault.issue_kit([w.s("bob"), w.s("carol")])
    assert kit.holders == ("bob", "carol")
    code = " ".join(w.vault.kit_part(w.s(n)) for n in kit.holders)
    assert code.startswith("GK2-1-") and " GK2-2-" in code
    with pytest.raises(PolicyError, match="no unprinted part"):
        w.vault.kit_part(w.s("bob"))  # each part is printed once, then erased
    assert not any("no emergency kit" in a for a in [x.message for x in w.vault.alerts()])
    co, value = w.vault.emergency_reveal(w.s("alice"), "db-root", code, "no approver "
                                         "reachable, site down", "INC-999", 1800)
    assert value.reveal() == "v1-value"
    assert co.state == "checked-out"
    w.vault.wait_notifications()  # delivered after the commit, off the release path
    assert json.loads(hook_out.read_text())["event"] == "emergency.used"
    # burned: the same code opens nothing, and the refusal is audited
    w.add("other", "other-value")
    with pytest.raises(PolicyError, match="not the active one"):
        w.vault.emergency_reveal(w.s("alice"), "other", code, "again", "INC-1000", 60)
    assert events(w, "emergency.refused")
    with w.vault.store.read() as txn:
        for sdoc in txn.table("sealed").values():
            assert kit.id not in sdoc["current"]["shares"]
    # loud until two approvers have reviewed
    assert any("EMERGENCY" in a for a in [x.message for x in w.vault.alerts()])
    # old sealed copies + the parts would still open what the kit held: loud until rotated
    assert w.vault.kit_exposure()
    assert any("KIT BURNED" in a for a in [x.message for x in w.vault.alerts()])
    w.vault.checkin(w.s("alice"), co.id)
    assert decrypt_version(w, "db-root") != "v1-value"  # everything it opened is rotated
    w.vault.kit_sweep(w.s("bob"))
    assert w.vault.kit_exposure() == []
    assert not any("KIT BURNED" in a for a in [x.message for x in w.vault.alerts()])
    with pytest.raises(PolicyError, match="approver role"):
        w.vault.review(w.s("alice"), co.id, "ok", "")  # the holder (and not an approver)
    w.vault.review(w.s("bob"), co.id, "concern", "why was no approver reachable?")
    with pytest.raises(PolicyError, match="already reviewed"):
        w.vault.review(w.s("bob"), co.id, "ok", "")  # the same approver counts once
    assert any("EMERGENCY" in a for a in [x.message for x in w.vault.alerts()])  # one review is not enough
    w.vault.review(w.s("carol"), co.id, "ok", "confirmed with the on-call lead")
    assert not any("EMERGENCY" in a for a in [x.message for x in w.vault.alerts()])


def test_a_typo_in_the_recovery_code_is_caught(w: World) -> None:
    kit = w.vault.issue_kit([w.s("bob"), w.s("dave")])
    part1, part2 = (w.vault.kit_part(w.s(n)) for n in kit.holders)
    # A typo inside the part (the last base32 character can hold only padding bits).
    i = len(part2) // 2 + (1 if part2[len(part2) // 2] == "-" else 0)
    broken = part2[:i] + ("A" if part2[i] != "A" else "B") + part2[i + 1:]
    with pytest.raises(UsageError, match="typo"):
        w.vault.emergency_reveal(w.s("alice"), "db-root", f"{part1} {broken}", "r", "t", 60)
    with pytest.raises(UsageError, match="both parts"):
        w.vault.emergency_reveal(w.s("alice"), "db-root", part1, "r", "t", 60)


# -- offboarding (R3) -----------------------------------------------------------------------
def test_removed_operator_old_shares_open_no_current_credential(w: World) -> None:
    w.add("api-key", "api-v1")
    carol = w.s("carol")
    cred_id = w.vault.cred_id_for("db-root")
    with w.vault.store.read() as txn:
        old_doc = txn.table("sealed").get(cred_id)
    assert old_doc is not None
    old_vdoc = old_doc["current"]
    carol_old_share = open_own_share(w.vault.vault_id, cred_id, old_vdoc, carol.operator_id,
                                     carol.hpke_priv)
    reachable = w.vault.remove_operator([w.s("bob"), w.s("alice")], "carol")
    assert reachable == ["api-key", "db-root"]
    with pytest.raises(PolicyError):
        w.vault.unlock("carol", "carol has a long passphrase", w.code("carol", 30))
    with w.vault.store.read() as txn:
        new_vdoc = txn.table("sealed").get(cred_id)["current"]  # type: ignore[index]
    assert carol.operator_id not in new_vdoc["shares"]
    bob = w.s("bob")
    bob_new = open_own_share(w.vault.vault_id, cred_id, new_vdoc, bob.operator_id, bob.hpke_priv)
    with pytest.raises(IntegrityError):
        recover_dek(w.vault.vault_id, cred_id, new_vdoc, [carol_old_share, bob_new])
    with pytest.raises(IntegrityError):
        shamir.combine_checked([carol_old_share, bob_new],
                               __import__("base64").b64decode(new_vdoc["commitment"]),
                               b"wrong-context")
    # the credentials still open for the remaining operators
    assert decrypt_version(w, "db-root") == "v1-value"
    # and the leaver sweep rotates everything they could reach
    results = w.vault.rotate_many(w.s("bob"), reachable)
    assert {r.outcome for r in results} == {"committed"}
    assert decrypt_version(w, "db-root") != "v1-value"
    assert events(w, "operator.removed")
    assert w.vault.verify_audit().ok


def test_nobody_takes_part_in_their_own_removal(w: World) -> None:
    with pytest.raises(PolicyError, match="own removal"):
        w.vault.remove_operator([w.s("bob"), w.s("carol")], "carol")


def test_step_up_with_a_fresh_code_follows_the_totp_rules(w: World) -> None:
    bob = w.s("bob")
    with pytest.raises(Exception, match="wrong or was already used"):
        w.vault.confirm_totp(bob, w.code("bob"))  # the step used to unlock
    w.clock.advance(30)
    w.vault.confirm_totp(bob, w.code("bob"))
    with pytest.raises(Exception, match="wrong or was already used"):
        w.vault.confirm_totp(bob, w.code("bob"))  # replay
    # the success reset the counter; the replay counted again
    assert [o.failures for o in w.vault.operators() if o.name == "bob"] == [1]


def test_removal_on_many_credentials_uses_every_core_and_loses_nothing(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from glasskey.core import offboarding

    monkeypatch.setattr(offboarding, "PARALLEL_FROM", 5)
    for i in range(12):
        w.add(f"svc-{i}", f"svc-value-{i}")
    reachable = w.vault.remove_operator([w.s("bob"), w.s("alice")], "carol")
    assert len(reachable) == 13
    for i in range(12):
        assert decrypt_version(w, f"svc-{i}") == f"svc-value-{i}"
    carol_id = next(o.id for o in w.vault.operators() if o.name == "carol")
    with w.vault.store.read() as txn:
        for sdoc in txn.table("sealed").values():
            assert carol_id not in sdoc["current"]["shares"]


def test_a_part_whose_letters_hold_gk2_still_decodes() -> None:
    """Parts are cut by length: about one part in 600 has "GK2" inside its base32 body, and
    a split at every "GK2" made such a kit unusable on the day it was needed."""
    import random as _random

    from glasskey.core.emergency import BODY_LEN, PART_LEN, decode_parts, encode_part, kit_key

    rnd = _random.Random(7)
    for _ in range(200_000):
        part2 = rnd.randbytes(PART_LEN)
        code2 = encode_part(2, part2)
        if "GK2" in code2.replace("-", "")[3:]:
            break
    else:
        raise AssertionError("no part with GK2 in its body found")
    part1 = rnd.randbytes(PART_LEN)
    code1 = encode_part(1, part1)
    want = kit_key(part1, part2)
    assert decode_parts(f"{code1} {code2}") == want
    assert decode_parts(f"{code2}\n{code1}") == want  # either order
    assert decode_parts((code2 + code1).replace("-", "").lower()) == want
    assert len(code1.replace("-", "")) == 3 + 1 + BODY_LEN
    with pytest.raises(UsageError, match="typo"):
        decode_parts(f"{code1} {code2}X")  # a stray letter at the end
    with pytest.raises(UsageError, match="typo"):
        decode_parts(f"{code1} {code2[:-1]}")  # one letter short
