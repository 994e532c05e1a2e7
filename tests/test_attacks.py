"""The hostile operator (issue 10, RELIABILITY.md H1-H8): one test per attack.

The attacker is an operator with write access to the vault directory and their
own passphrase and TOTP. Each test builds a vault the normal way, makes the
edits such an attacker would make to the files (vault.json, the shard files,
audit.jsonl, their own client state), and asserts that nothing is released and
that the tampering is reported as an integrity failure (exit 3) naming what
failed. Every operator's client has its own state directory (its checkpoint of
the verified chain), switched with ``client()``.

Each of these attacks worked against glasskey 0.1 (issue 10 lists how).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkout_world import World, make_world
from glasskey.core.audit import Signer
from glasskey.core.canonical import b64d, b64e
from glasskey.core.credentials import CredentialSpec
from glasskey.core.crypto import hpke, sign
from glasskey.core.emergency import decode_parts
from glasskey.core.envelope import (
    decrypt_secret,
    grant_info,
    open_grant,
    open_own_share,
    recover_dek,
)
from glasskey.core.errors import GlasskeyError, IntegrityError, UsageError
from glasskey.core.roster import Change, sign_change
from glasskey.core.secret import SecretValue
from glasskey.core.store import Store
from glasskey.core.vault import Vault
from helpers import tamper_shard, tamper_state
from test_cli import Cli, cli, fresh_step  # noqa: F401  (the CLI fixture)

SCRIPT_MARKER = "attacker-script-ran"


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = make_world(tmp_path, ("alice", "bob", "carol", "dave"))
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / "clients" / "setup"))
    world.add("db-root", "db-root-value-1")
    yield world


def client(w: World, monkeypatch: pytest.MonkeyPatch, name: str) -> Vault:
    """``name``'s own client: its own checkpoint and pins, a fresh view of the files."""
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(w.root.parent / "clients" / name))
    return Vault(w.root, w.clock, allow_weak_kdf=True)


def forge(w: World, monkeypatch: pytest.MonkeyPatch, signer: Signer, event: str,
          subject: str, details: dict[str, Any],
          also: Any = None) -> int:
    """Append an entry (chained, head moved in vault.json) with the attacker's own
    copy of the library, from the attacker's own client; returns its seq."""
    client(w, monkeypatch, "attacker")
    store = Store(w.root)
    store.now = w.clock.now
    with store.transaction() as txn:
        seq = txn.record(signer, event, subject, details)
        if also is not None:
            also(txn)
    return seq


def sealed_bytes(w: World) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (w.root / "tables").glob("sealed.*")}


# -- H1: public-key swap ------------------------------------------------------------------------
def test_h1_swapped_approver_key_is_refused_before_anything_is_sealed(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = hpke.generate_private()  # the attacker's own HPKE key
    bob_old = w.vault.operators()[1].hpke_pub
    tamper_state(w.root, lambda st: st["operators"]["bob"].update(
        hpke_pub=b64e(hpke.public_from_private(mine))))
    before = sealed_bytes(w)
    admin = client(w, monkeypatch, "dave")
    with pytest.raises(IntegrityError, match="operator record 'bob' differs from the signed "
                                             "roster") as info:
        admin.add_credential(w.s("dave"), CredentialSpec("new-cred", secret=SecretValue("x")))
    assert info.value.exit_code == 3
    assert sealed_bytes(w) == before  # nothing sealed to the swapped key
    # ... and a rotation's re-seal is refused the same way
    with pytest.raises(IntegrityError, match="'bob' differs"):
        admin.rotate(w.s("dave"), admin.cred_id_for("db-root"), None, reason="sweep")
    # putting the key back makes the vault usable again; the sealed files never changed
    tamper_state(w.root, lambda st: st["operators"]["bob"].update(hpke_pub=bob_old))
    assert sealed_bytes(w) == before


def test_h1_swapped_requester_key_gets_no_grant(w: World,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-1", 600)
    carol_pub = w.vault.operators()[2].hpke_pub
    tamper_state(w.root, lambda st: st["operators"]["alice"].update(hpke_pub=carol_pub))
    bob = client(w, monkeypatch, "bob")
    with pytest.raises(IntegrityError, match="'alice' differs from the signed roster"):
        bob.approve(w.s("bob"), req.id)
    raw = json.loads((w.root / "vault.json").read_text())
    assert raw["active"][w.vault.cred_id_for("db-root")]["state"] == "requested"  # no grant


# -- H2: sock-puppet operator ---------------------------------------------------------------------
def _mallory(roles: list[str]) -> tuple[dict[str, Any], bytes]:
    sign_priv = sign.generate_private()
    record = {"id": "omallory0001", "name": "mallory", "roles": roles, "status": "active",
              "x": 99, "hpke_pub": b64e(hpke.public_from_private(hpke.generate_private())),
              "sign_pub": b64e(sign.public_from_private(sign_priv))}
    return record, sign_priv


@pytest.mark.parametrize("how", ["self-signed", "garbage-admin-signature"])
def test_h2_sock_puppet_is_never_listed_sealed_to_or_counted(
        w: World, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    alice = w.s("alice")  # requester only
    record, _ = _mallory(["approver", "requester"])
    roster = client(w, monkeypatch, "alice").store
    with roster.read() as txn:
        current = txn.roster
    change = {"op": str(Change.ENROL), "subject": "mallory", "record": record}
    sigs = sign_change(current, change, [("alice", alice.sign_priv)])
    if how == "garbage-admin-signature":
        sigs["bob"] = b64e(b"\x01" * 64)

    def insert(txn: Any) -> None:
        txn.table("operators").put("mallory", {**record, "kdf": {}, "wrapped": "",
                                               "created": 0.0, "totp": {}})

    seq = forge(w, monkeypatch, alice.signer, "operator.enrolled", "mallory",
                {"roster": change, "sigs": sigs, "countersigned_by": ["alice", "bob"]}, insert)
    before = sealed_bytes(w)
    for name in ("bob", "dave"):
        honest = client(w, monkeypatch, name)
        with pytest.raises(IntegrityError, match=f"audit entry {seq} is an invalid roster "
                                                 "change") as info:
            honest.operators()
        assert info.value.exit_code == 3
        if how == "self-signed":
            assert "not signed by two active operators" in str(info.value)
        else:
            assert "not an active operator's (bob)" in str(info.value)
        with pytest.raises(IntegrityError):
            honest.add_credential(w.s("dave"), CredentialSpec("x", secret=SecretValue("v")))
    assert sealed_bytes(w) == before
    result = client(w, monkeypatch, "auditor").verify_audit()
    assert not result.ok and result.first_bad == seq


def test_h2_an_unsigned_operator_record_is_named(w: World,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    record, _ = _mallory(["approver", "admin"])
    tamper_state(w.root, lambda st: st["operators"].update(mallory=record))
    with pytest.raises(IntegrityError, match="'mallory' is not backed by a signed enrolment"):
        client(w, monkeypatch, "bob").operators()


# -- H3: roles and status are flags ----------------------------------------------------------------
def test_h3_self_granted_admin_role_is_refused(w: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tamper_state(w.root, lambda st: st["operators"]["alice"].update(
        roles=["requester", "admin"]))
    with pytest.raises(IntegrityError, match="'alice' differs from the signed roster"):
        client(w, monkeypatch, "alice").add_credential(
            w.s("alice"), CredentialSpec("mine", secret=SecretValue("v")))


def test_h3_suspended_operator_cannot_unsuspend_himself(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-2", 600)
    w.vault.suspend_operator([w.s("bob"), w.s("dave")], "carol", "left")
    tamper_state(w.root, lambda st: st["operators"]["carol"].update(status="active"))
    with pytest.raises(IntegrityError, match="'carol' differs from the signed roster"):
        client(w, monkeypatch, "carol").unlock("carol", "carol has a long passphrase",
                                               w.code("carol"))
    tamper_state(w.root, lambda st: st["operators"]["carol"].update(status="suspended"))
    assert client(w, monkeypatch, "alice").checkout(req.id).state == "requested"


def test_h3_stretched_policy_is_named(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    cred_id = w.vault.cred_id_for("db-root")
    tamper_shard(w.root, "credentials", cred_id,
                 lambda d: d["policy"].update(k=2, max_duration=30 * 24 * 3600))
    with pytest.raises(IntegrityError, match=r"db-root's configuration .* it was edited"):
        client(w, monkeypatch, "alice").request(w.s("alice"), "db-root", "r", "t", 7 * 86400)


# -- H4: rotation target swap ------------------------------------------------------------------------
def test_h4_swapped_target_never_runs(w: World, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    honest = tmp_path / "targets" / "set-password"
    honest.parent.mkdir()
    honest.write_text("#!/bin/sh\ncat >/dev/null\necho '{\"ok\": true}'\n")
    honest.chmod(0o755)
    evil = tmp_path / "targets" / "evil"
    evil.write_text(f"#!/bin/sh\ncat > {tmp_path / SCRIPT_MARKER}\n")
    evil.chmod(0o755)
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        "svc", connector="command", secret=SecretValue("svc-value-1"), target=str(honest)))
    req = w.checkout("svc")
    w.vault.reveal(w.s("alice"), req)
    cred_id = w.vault.cred_id_for("svc")
    tamper_shard(w.root, "credentials", cred_id, lambda d: d.update(target=str(evil)))
    holder = client(w, monkeypatch, "alice")
    with pytest.raises(IntegrityError, match=r"svc's configuration .* it was edited"):
        holder.checkin(w.s("alice"), req)
    assert not (tmp_path / SCRIPT_MARKER).exists()  # it never ran, never saw a value
    tamper_shard(w.root, "credentials", cred_id, lambda d: d.update(target=str(honest)))
    intents = [json.loads(x) for x in (w.root / "audit.jsonl").read_text().splitlines()
               if '"rotate.intent"' in x]
    assert not intents  # nothing was attempted on the swapped target


def test_h4_rotation_intent_records_the_target_digest(w: World) -> None:
    from glasskey.core.roster import config_digest

    req = w.checkout("db-root")
    w.vault.reveal(w.s("alice"), req)
    w.vault.checkin(w.s("alice"), req)
    (intent,) = [json.loads(x) for x in (w.root / "audit.jsonl").read_text().splitlines()
                 if '"rotate.intent"' in x]
    with w.vault.store.read() as txn:
        cred = txn.table("credentials").get(w.vault.cred_id_for("db-root"))
    assert cred is not None
    assert intent["details"]["config"] == config_digest(w.vault.vault_id, cred)


# -- H1/H4: sealed material is authentic ---------------------------------------------------------------
def test_sealed_share_set_swapped_is_named(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-3", 600)
    cred_id = w.vault.cred_id_for("db-root")
    with w.vault.store.read() as txn:
        sdoc = txn.table("sealed").get(cred_id)
    assert sdoc is not None
    bob_id = next(o.id for o in w.vault.operators() if o.name == "bob")
    carol_id = next(o.id for o in w.vault.operators() if o.name == "carol")
    shares = sdoc["current"]["shares"]
    tamper_shard(w.root, "sealed", cred_id, lambda d: d["current"]["shares"].update(
        {bob_id: shares[carol_id], carol_id: shares[bob_id]}))
    with pytest.raises(IntegrityError, match="sealed shares of db-root do not carry"):
        client(w, monkeypatch, "bob").approve(w.s("bob"), req.id)


# -- H5: forged entries --------------------------------------------------------------------------
def test_h5_entry_forged_as_bob_is_refused_by_the_next_writer(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bob = Signer("bob", sign.generate_private())
    seq = forge(w, monkeypatch, fake_bob, "checkout.approved", "r-anything",
                {"credential": "db-root", "note": "bob approved this (he did not)"})
    bob = client(w, monkeypatch, "bob")
    with pytest.raises(IntegrityError, match=f"audit entry {seq} carries a signature that "
                                             "is not bob's"):
        bob.request(w.s("bob"), "db-root", "r", "t", 600)  # bob never signs on top of it
    result = client(w, monkeypatch, "auditor").verify_audit()
    assert not result.ok and result.first_bad == seq and "not bob's" in result.reason


# -- H6: offline redemption ----------------------------------------------------------------------
def test_h6_a_grant_opened_offline_then_cancelled_is_rotated_and_reviewed(w: World) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-4", 600)
    w.vault.approve(w.s("bob"), req.id)
    alice = w.s("alice")
    cred_id = w.vault.cred_id_for("db-root")
    with w.vault.store.read() as txn:  # the files alone, with her own key
        vdoc = (txn.table("sealed").get(cred_id) or {})["current"]
        rdoc = txn.table("requests").get(req.id) or {}
    (a,) = rdoc["approvals"]
    info = grant_info(w.vault.vault_id, req.id, cred_id, int(rdoc["version"]),
                      alice.operator_id, a["approver_id"], float(a["expires"]))
    shares = [open_own_share(w.vault.vault_id, cred_id, vdoc, alice.operator_id,
                             alice.hpke_priv), open_grant(a["grant"], alice.hpke_priv, info)]
    value = decrypt_secret(w.vault.vault_id, cred_id, vdoc,
                           recover_dek(w.vault.vault_id, cred_id, vdoc, shares)).reveal()
    assert value == "db-root-value-1"  # she has it, offline, no reveal recorded
    w.vault.cancel(alice, req.id)
    co = w.vault.checkout(req.id)
    assert co.released and co.state == "closed"
    assert w.vault.credential("db-root").version == 2  # what she saw is worthless now
    assert req.id in [i.id for i in w.vault.review_queue()]


# -- H7: rollback -------------------------------------------------------------------------------
def test_h7_rollback_is_refused_by_every_client_that_saw_later(
        w: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-5", 600)
    client(w, monkeypatch, "bob").approve(w.s("bob"), req.id)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(w.root, snapshot)
    assert client(w, monkeypatch, "alice").reveal(w.s("alice"), req.id).reveal()
    # a reviewer's read-only look (no unlock) after the reveal: a witness too
    reviewer = client(w, monkeypatch, "reviewer")
    assert reviewer.checkout(req.id).state == "checked-out"
    bob_view = client(w, monkeypatch, "bob")
    assert bob_view.checkout(req.id).state == "checked-out"
    # alice restores the snapshot and forgets her own witness, then reveals again
    shutil.rmtree(w.root)
    shutil.copytree(snapshot, w.root)
    shutil.rmtree(w.root.parent / "clients" / "alice")
    w.clock.advance(40)
    again = client(w, monkeypatch, "alice").reveal(w.s("alice"), req.id)
    assert again.reveal()  # in a file vault, her own second reveal cannot be stopped ...
    for who in ("reviewer", "bob"):  # ... but every client that saw later refuses
        with pytest.raises(IntegrityError, match=r"rolled back|rewritten"):
            client(w, monkeypatch, who).checkouts()
        result = client(w, monkeypatch, who).verify_audit()
        assert not result.ok and "rolled back" in result.reason


def test_h7_a_refounded_vault_in_the_same_place_is_refused(
        w: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bob = client(w, monkeypatch, "bob")
    assert bob.credentials()  # pins the vault identity for this location
    shutil.rmtree(w.root)
    other = make_world(tmp_path / "other", ("alice", "bob", "carol"))
    shutil.copytree(other.root, w.root)
    with pytest.raises(IntegrityError, match="not the one this client first used there"):
        client(w, monkeypatch, "bob").credentials()


# -- H8: the emergency kit ---------------------------------------------------------------------
def test_h8_no_single_operator_holds_the_kit(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = w.vault.issue_kit([w.s("bob"), w.s("dave")])
    part_bob = w.vault.kit_part(w.s("bob"))
    with pytest.raises(UsageError, match="both parts"):
        decode_parts(part_bob)  # bob's own share + his part: not a kit
    # bob cannot print dave's part: it is sealed to dave's key
    raw = json.loads((w.root / "vault.json").read_text())
    blob = raw["kits"][issued.id]["parts"]["dave"]["blob"]
    with pytest.raises(GlasskeyError):
        hpke.open_(w.s("bob").hpke_priv, b64d(blob), b"anything")
    assert "bob" not in raw["kits"][issued.id]["parts"]  # printed once, then erased


def test_h8_old_sealed_copies_open_nothing_current_after_a_use(
        w: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    w.add("payments", "payments-value-1")
    w.vault.issue_kit([w.s("bob"), w.s("dave")])
    code = " ".join(w.vault.kit_part(w.s(n)) for n in ("bob", "dave"))
    copies = tmp_path / "copies"
    shutil.copytree(w.root / "tables", copies)  # the attacker keeps the old sealed files
    co, _ = w.vault.emergency_reveal(w.s("alice"), "db-root", code, "no approver", "INC-6",
                                     600)
    assert any("KIT BURNED" in a for a in [x.message for x in w.vault.alerts()])
    w.vault.checkin(w.s("alice"), co.id)
    w.vault.kit_sweep(w.s("bob"))
    assert not w.vault.kit_exposure()
    kit_priv = decode_parts(code)
    kit_id = next(iter(json.loads((w.root / "vault.json").read_text())["kits"]))
    for name in ("db-root", "payments"):
        cred_id = w.vault.cred_id_for(name)
        old = next(json.loads(p.read_bytes())["docs"][cred_id]["current"]
                   for p in copies.glob("sealed.*") if not p.name.startswith("sealed.g")
                   if cred_id in json.loads(p.read_bytes())["docs"])
        alice = w.s("alice")
        shares = [open_own_share(w.vault.vault_id, cred_id, old, alice.operator_id,
                                 alice.hpke_priv),
                  open_own_share(w.vault.vault_id, cred_id, old, kit_id, kit_priv)]
        stale = decrypt_secret(w.vault.vault_id, cred_id, old,
                               recover_dek(w.vault.vault_id, cred_id, old, shares)).reveal()
        assert w.vault.credential(name).version > int(old["version"])  # rotated since
        assert stale.endswith("-value-1")  # what the copies open is the retired value


# -- unsigned system entries ------------------------------------------------------------------------
def test_unsigned_lockouts_are_labelled_never_someones_act(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from glasskey.core import report as rp
    from glasskey.core.audit import SYSTEM_SIGNER

    for _ in range(3):
        forge(w, monkeypatch, SYSTEM_SIGNER, "auth.locked", "bob", {"retry_in": 3600})
    report = rp.build_custody_report(client(w, monkeypatch, "reviewer"),
                                     w.clock.now() - 86400, w.clock.now() + 60)
    text = rp.render_markdown(report)
    assert "unsigned" in text
    assert len([e for e in report.unsigned if e.event == "auth.locked"]) == 3


# -- through the real command line --------------------------------------------------------------------
def test_cli_key_swap_is_exit_3_naming_the_operator(cli: Cli) -> None:  # noqa: F811
    fresh_step()
    tamper_state(cli.root / "vault", lambda st: st["operators"]["bob"].update(
        hpke_pub=b64e(hpke.public_from_private(hpke.generate_private()))))
    r = cli("cred", "add", "db", *cli.as_("bob", 0))
    assert r.code == 3, r.err
    assert "operator record 'bob' differs from the signed roster" in r.err
    assert len([x for x in r.err.splitlines() if x.strip()]) == 1
    assert cli("cred", "list").code == 3  # read-only commands refuse too


def test_cli_forged_entry_is_exit_3_naming_the_entry(cli: Cli) -> None:  # noqa: F811
    fresh_step()
    assert cli("cred", "add", "db", *cli.as_("bob", 0)).code == 0
    store = Store(cli.root / "vault")
    with store.transaction() as txn:  # the attacker's own library, own client
        seq = txn.record(Signer("bob", sign.generate_private()), "checkout.approved", "r-x",
                         {"forged": True})
    r = cli("request", "list", "--json")
    assert r.code == 3 and f"audit entry {seq}" in r.err and "not bob's" in r.err
    r = cli("audit", "verify", "--json")
    assert r.code == 3 and json.loads(r.out)["first_bad"] == seq
