"""Readiness drills (issue 14): an operator proves they can unlock and open their own
share, verified against the signed share set, without combining shares; a kit drill
checks the check code printed with the kit against the active kit. Each is signed and
audited, and the custody report shows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from checkout_world import World, make_world, passphrase
from glasskey.core.canonical import b64e
from glasskey.core.crypto import hpke
from glasskey.core.errors import IntegrityError, PolicyError


def entries(w: World, event: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, (w.root / "audit.jsonl").read_text().splitlines())
            if e["event"] == event]


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    w.add("db-root", "v1-value")
    w.add("ldap-admin", "v2-value")
    return w


def test_a_share_drill_passes_signed_and_releases_nothing(world: World) -> None:
    w = world
    before = w.vault.checkouts()
    result = w.vault.drill(w.s("carol"), "db-root")
    assert result.kind == "share" and result.subject == "db-root"
    assert result.checks[-1] == "share-well-formed"
    [entry] = entries(w, "drill.passed")
    assert entry["actor"] == "carol" and entry["sig"]
    assert entry["details"]["kind"] == "share"  # type: ignore[index]
    assert w.vault.checkouts() == before  # no request, no grant, nothing released
    assert "v1-value" not in (w.root / "audit.jsonl").read_text()
    # a random credential is one carol holds a share of
    assert w.vault.drill(w.s("carol")).subject in ("db-root", "ldap-admin")


def test_a_share_that_does_not_open_fails_the_drill_audited(world: World) -> None:
    """A share sealed to another key (re-signed by its sealer, so the signature check
    passes) does not open: drill.failed names the failed check."""
    w = world
    from glasskey.core.roster import sign_seal

    bob = w.s("bob")
    cred_id = w.vault.cred_id_for("db-root")
    carol_id = w.s("carol").operator_id
    with w.vault.store.transaction() as txn:
        sdoc = txn.table("sealed").get(cred_id)
        assert sdoc is not None
        vdoc = dict(sdoc["current"])
        vdoc.pop("seal_sig", None)
        stranger = hpke.public_from_private(b"\x07" * 32)
        vdoc["shares"] = dict(vdoc["shares"], **{carol_id: b64e(hpke.seal(
            stranger, b"\x01" * 33, b"wrong"))})
        sign_seal(txn.roster, cred_id, vdoc, bob.name, bob.sign_priv)  # in place
        sdoc["current"] = vdoc
        txn.table("sealed").put(cred_id, sdoc)
    with pytest.raises(IntegrityError):
        w.vault.drill(w.s("carol"), "db-root")
    [failed] = entries(w, "drill.failed")
    assert failed["actor"] == "carol"
    assert failed["details"]["failed"] == "own-share-opens"  # type: ignore[index]


def test_a_tampered_share_set_fails_the_drill(world: World) -> None:
    w = world
    cred_id = w.vault.cred_id_for("db-root")
    with w.vault.store.transaction() as txn:
        sdoc = txn.table("sealed").get(cred_id)
        assert sdoc is not None
        sdoc["current"]["k"] = 3
        txn.table("sealed").put(cred_id, sdoc)
    with pytest.raises(IntegrityError):
        w.vault.drill(w.s("bob"), "db-root")
    [failed] = entries(w, "drill.failed")
    assert failed["details"]["failed"] == "share-set-signature"  # type: ignore[index]


def test_kit_drill_matches_the_check_code_without_using_the_kit(world: World) -> None:
    w = world
    kit = w.vault.issue_kit([w.s("bob"), w.s("carol")])
    with pytest.raises(PolicyError, match="does not match the active kit"):
        w.vault.kit_drill(w.s("bob"), "0000:0000:0000:0000:0000")
    result = w.vault.kit_drill(w.s("bob"), kit.fingerprint.upper().replace(":", " "))
    assert result.kind == "kit" and result.subject == kit.id
    assert w.vault.active_kit() is not None  # not used, not burned
    assert [e["details"]["kind"] for e in entries(w, "drill.passed")] == ["kit"]  # type: ignore[index]
    assert len(entries(w, "drill.failed")) == 1


def test_drill_cli_and_check_code_printed_with_the_kit_part(tmp_path: Path) -> None:
    """Real processes on a vault whose clock is the real one (the CLI's)."""
    import time

    from checkout_world import FAST_KDF, ROLES, SEEDS
    from glasskey.core import totp
    from glasskey.core.clock import FakeClock
    from glasskey.core.operators import OperatorSpec
    from glasskey.core.vault import Vault

    os.environ["GLASSKEY_INSECURE_FAST_KDF"] = "1"
    os.environ["GLASSKEY_STATE_DIR"] = str(tmp_path / "client-state")
    clock = FakeClock(time.time() - 900)
    vault = Vault(tmp_path / "vault", clock, allow_weak_kdf=True)
    names = ("alice", "bob", "carol")
    vault.initialise([OperatorSpec(n, ROLES[n], passphrase(n), SEEDS[n]) for n in names],
                     kdf_params=FAST_KDF)
    w = World(tmp_path / "vault", clock, vault)
    w.add("db-root", "v1-value")
    w.vault.issue_kit([w.s("bob"), w.s("carol")])
    env = dict(os.environ)

    def cli(*args: str, who: str, step: int = 0) -> subprocess.CompletedProcess[bytes]:
        pf = tmp_path / f"{who}.pass"
        pf.write_text(passphrase(who) + "\n")
        code = totp.code_at(SEEDS[who], time.time() + 30 * step)
        return subprocess.run(
            [sys.executable, "-m", "glasskey.tui.cli", *args, "--vault", str(w.root), "--as", who,
             "--totp", code, "--passphrase-file", str(pf), "--json"],
            env=env, capture_output=True, timeout=60)

    part = cli("kit", "part", who="bob")
    assert part.returncode == 0, part.stderr
    check = json.loads(part.stdout)["check_code"]
    kit = w.vault.active_kit()
    assert kit is not None and check == kit["fingerprint"]
    ok = cli("drill", "--kit", "--check-code", check, who="carol")
    assert ok.returncode == 0, ok.stderr
    share = cli("drill", "--cred", "db-root", who="carol", step=1)
    assert share.returncode == 0, share.stderr
    assert json.loads(share.stdout)["subject"] == "db-root"
    bad = cli("drill", "--kit", "--check-code", "0000", who="bob", step=1)
    assert bad.returncode == 1 and b"does not match" in bad.stderr


def test_custody_report_shows_drills_and_flags_the_undrilled(world: World) -> None:
    from glasskey.core.report import build_custody_report, render_markdown

    w = world
    start = w.clock.now() - 10
    w.vault.drill(w.s("carol"), "db-root")
    report = build_custody_report(w.vault, start)
    by_op = {d.operator: d for d in report.drills}
    assert by_op["carol"].passed_in_period == 1 and not by_op["carol"].flagged
    assert by_op["carol"].last_subject == "db-root" and by_op["carol"].last_passed
    assert by_op["alice"].flagged and by_op["bob"].flagged
    # k = 2 and one drilled operator: both credentials are short
    assert sorted(c.credential for c in report.drill_credentials) == ["db-root", "ldap-admin"]
    assert any(f.kind == "drill-missing" and "alice" in f.subject for f in report.findings)
    w.vault.drill(w.s("bob"), "ldap-admin")
    report = build_custody_report(w.vault, start)
    assert not report.drill_credentials
    md = render_markdown(report)
    assert "## Drills" in md and "NOT DRILLED IN PERIOD" in md  # alice still
    # a later report period that starts after the drills still knows the last one
    w.clock.advance(86400)
    later = build_custody_report(w.vault, w.clock.now() - 10)
    carol = {d.operator: d for d in later.drills}["carol"]
    assert carol.flagged and carol.last_passed is not None


def test_custody_report_lists_failed_notification_deliveries(world: World,
                                                             tmp_path: Path) -> None:
    from glasskey.core.report import build_custody_report

    w = world
    start = w.clock.now() - 10
    (w.root / "glasskey.toml").write_text(
        '[notify]\nwebhook = "http://127.0.0.1:9/nothing-listens"\ntimeout = 1\n')
    req = w.vault.request(w.s("alice"), "db-root", "primary down", "INC-42", 1800)
    w.vault.wait_notifications()
    report = build_custody_report(w.vault, start)
    [nf] = report.notify_failures
    assert nf.request == req.id and "checkout.requested via webhook" in nf.why
    assert any(f.kind == "notify-failed" for f in report.findings)
