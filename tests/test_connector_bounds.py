"""Bounded connectors (issue 15, "Connectors"; issue 11, "Leaks"), with real processes.

* a command target is waited for as a *process*: a script that leaves a
  daemon holding its stdout and exits 0 has succeeded;
* a command target printing 400 MB leaves glasskey's memory bounded (peak
  RSS of a real child process, measured with getrusage);
* connector options are validated when they are set (``cred add`` through the
  real CLI: exit 2, one sentence) and any exception inside a rotation is a
  failed rotation;
* no 4-character fragment of the old or the new value, echoed by a script's
  stderr or message, reaches the audit log, the CLI message, the review queue
  or the alerts;
* a command target must sit under the site policy's allowed directories
  (symlinks resolved); the glasskey.toml beside the vault cannot widen it, and
  a script outside never runs (marker file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from checkout_world import World, decrypt_version, make_world
from glasskey.core.connectors.base import ConnectorSettings, scrub_fragments
from glasskey.core.connectors.command import CommandConnector
from glasskey.core.connectors.registry import make
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import ConnectorError, PolicyError, UsageError
from glasskey.core.models import Policy
from glasskey.core.roster import sign_config
from glasskey.core.secret import SecretValue
from test_cli import Cli, fresh_step, one_sentence
from test_cli import cli as cli  # the fixture, re-exported

ROOT = Path(__file__).resolve().parent.parent


def script(directory: Path, body: str, name: str = "target.py") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport json, os, subprocess, sys, time\n"
                    f"OUT = {str(directory)!r}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def connector(path: Path, **options: str) -> CommandConnector:
    c = make("command", ConnectorSettings(credential="cmd-cred", target=str(path),
                                          options=options))
    assert isinstance(c, CommandConnector)
    return c


def site_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "site-policy.toml"
    path.write_text(text)
    monkeypatch.setenv("GLASSKEY_SITE_CONFIG", str(path))
    return path


# -- waiting for the process, not for its pipes ------------------------------------------------
def test_a_script_leaving_a_daemon_on_stdout_succeeds_at_once(tmp_path: Path) -> None:
    target = script(tmp_path, """
        json.load(sys.stdin)
        daemon = subprocess.Popen(["sleep", "60"], stdout=sys.stdout, stderr=sys.stderr)
        open(os.path.join(OUT, "daemon.pid"), "w").write(str(daemon.pid))
        sys.exit(0)
    """)
    try:
        started = time.monotonic()
        assert connector(target, timeout="5").verify(SecretValue("some-value-1")) is True
        took = time.monotonic() - started
    finally:
        pid = int((tmp_path / "daemon.pid").read_text())
        os.kill(pid, signal.SIGKILL)
    assert took < 2.5, f"waited {took:.1f} s for pipes a daemon holds"


def test_a_hung_script_is_killed_with_its_group_at_the_deadline(tmp_path: Path) -> None:
    target = script(tmp_path, """
        json.load(sys.stdin)
        child = subprocess.Popen(["sleep", "60"])
        open(os.path.join(OUT, "child.pid"), "w").write(str(child.pid))
        time.sleep(60)
    """)
    started = time.monotonic()
    with pytest.raises(ConnectorError, match="did not finish within 1 s"):
        connector(target, timeout="1").verify(SecretValue("some-value-1"))
    assert time.monotonic() - started < 3
    pid = int((tmp_path / "child.pid").read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the script's child outlived the timeout")


# -- bounded output --------------------------------------------------------------------------
PEAK_RSS = """
import resource, sys
from glasskey.core.connectors.base import ConnectorSettings
from glasskey.core.connectors.registry import make
from glasskey.core.secret import SecretValue
c = make("command", ConnectorSettings(credential="big", target=sys.argv[1],
                                      options={"timeout": "300"}))
ok = c.verify(SecretValue("some-value-1"))
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_script_printing_400_mb_keeps_memory_bounded(tmp_path: Path) -> None:
    target = script(tmp_path, """
        json.load(sys.stdin)
        block = b"x" * (1 << 20)
        for _ in range(400):
            sys.stdout.buffer.write(block)
            sys.stderr.buffer.write(block[:1024])
        sys.exit(0)
    """)
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS, str(target)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    ok, peak_kb = proc.stdout.split()
    assert ok == "True"
    print(f"peak RSS with a 400 MB-printing target: {int(peak_kb) / 1024:.1f} MiB")
    # ~67 MiB on a quiet machine (the interpreter and imports are ~20 MiB; the old
    # unbounded read reached 1,222 MiB). Under heavy load a run once peaked at
    # 182 MiB; anything that kept the output would exceed 400 MiB.
    assert int(peak_kb) < 256 * 1024, f"peak RSS {int(peak_kb) / 1024:.0f} MiB"


# -- options checked when set ----------------------------------------------------------------
@pytest.mark.parametrize("bad", ["1e7", "inf", "-1", "nan", "0", "soon"])
def test_cred_add_refuses_a_bad_timeout_with_exit_2(cli: Cli, bad: str) -> None:
    target = script(cli.root / "scripts", "sys.exit(0)\n")
    r = cli("cred", "add", "x", "--connector", "command", "--target", str(target),
            "--option", f"timeout={bad}", *cli.as_("bob", 0))
    assert r.code == 2, (r.code, r.err)
    assert one_sentence(r.err) and "timeout" in r.err, r.err


@pytest.mark.parametrize("connector_name", ["postgres", "ldap", "command"])
def test_every_connector_checks_its_timeout_when_added(tmp_path: Path,
                                                       connector_name: str) -> None:
    w = make_world(tmp_path)
    target = script(tmp_path / "scripts", "sys.exit(0)\n")
    with pytest.raises(UsageError, match="timeout"):
        w.vault.add_credential(w.s("bob"), CredentialSpec(
            "c", connector=connector_name, target=str(target),
            options={"timeout": "inf", "dn": "uid=x"}))


def test_an_unexpected_exception_in_a_connector_is_a_failed_rotation(tmp_path: Path) -> None:
    """A bad option slipped past the check (an old vault) or a connector bug:
    a failed rotation, never an internal error."""
    w = make_world(tmp_path)
    target = script(tmp_path / "scripts", "sys.exit(0)\n")
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        "c", connector="command", secret=SecretValue("initial-value-1"), target=str(target)))
    cred_id = w.vault.cred_id_for("c")
    with w.vault.store.transaction() as txn:  # what an older glasskey let in
        doc = txn.table("credentials").get(cred_id)
        assert doc is not None
        doc["options"] = {"timeout": "1e400"}
        # ... under an admin's signature (an unsigned edit is refused as tampering)
        doc["config_sig"] = sign_config(w.vault.vault_id, doc, "bob", w.s("bob").sign_priv)
        txn.table("credentials").put(cred_id, doc)
    req = w.checkout("c")
    w.vault.reveal(w.s("alice"), req)
    result = w.vault.checkin(w.s("alice"), req)
    assert result.outcome == "failed" and "timeout" in result.message
    assert w.vault.credential("c").status == "rotation-failed"


# -- no fragment of a value leaves the connector layer ------------------------------------
ECHO_SLICES = """
req = json.load(sys.stdin)
v, c = req["value"], req["current"] or ""
sys.stderr.write("cannot set " + v[0:5] + " / " + v[7:11] + " / " + v[-4:]
                 + " old " + c[2:8] + " / " + c[-5:] + " " + json.dumps(v[3:12]) + "\\n")
print(json.dumps({"message": "tried " + v[5:9] + " and " + c[0:4]}))
sys.exit(1 if req["action"] == "set" else 1)
"""


def fragments(value: str) -> set[str]:
    return {value[i:i + 4] for i in range(len(value) - 3)}


def connector_texts(w: World, result_message: str) -> dict[str, str]:
    """Every text a connector message can reach: the rotate.failed entries'
    details, the CLI's message, the review queue and the alerts."""
    entries = [json.loads(line) for line in (w.root / "audit.jsonl").read_text().splitlines()]
    return {
        "audit": json.dumps([e for e in entries if "rotate" in json.dumps(e)]),
        "message": result_message,
        "reviews": json.dumps([item.summary for item in w.vault.review_queue()]),
        "alerts": "\n".join(x.message for x in w.vault.alerts()),
        "flags": json.dumps(w.vault.flagged()),
    }


def test_a_script_echoing_slices_of_the_values_leaks_no_fragment(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    old = "OLDv4lue-Zq9x-Kp2w-Jm"
    target = script(tmp_path / "scripts", ECHO_SLICES)
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        "echoer", connector="command", secret=SecretValue(old), target=str(target),
        policy=Policy(length=24, classes=("upper",))))
    req = w.checkout("echoer")
    assert w.vault.reveal(w.s("alice"), req).reveal() == old
    result = w.vault.checkin(w.s("alice"), req)
    assert result.outcome == "failed"
    assert "cannot set" in result.message  # the reason itself survives
    new = decrypt_version(w, "echoer", "pending")
    assert new and new != old
    bad = fragments(old) | fragments(new)
    for where, text in connector_texts(w, result.message).items():
        leaked = sorted(f for f in bad if f in text)
        assert not leaked, f"{where} holds fragments {leaked}"


def test_scrubbing_leaves_public_names_alone_and_marks_whole_runs() -> None:
    value = SecretValue("mainframe-pw-9Xz")
    text = "credential 'legacy-mainframe': got mainframe-pw-9 back"
    out = scrub_fragments(text, [value], keep=["'legacy-mainframe'"])
    assert out.startswith("credential 'legacy-mainframe': got ")
    assert "mainframe-pw" not in out.split(": ", 1)[1] and "[\u2026]" in out
    assert scrub_fragments("xy", [SecretValue("xy")]) == "[\u2026]"


# -- who may run code ------------------------------------------------------------------------
def test_a_script_outside_the_allowed_dirs_never_runs(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = script(tmp_path / "elsewhere", """
        open(os.path.join(OUT, "RAN"), "w").write("ran")
        sys.exit(0)
    """)
    site_policy(tmp_path, monkeypatch, f'[command]\nallowed_dirs = ["{allowed}"]\n')
    link = allowed / "innocent"
    link.symlink_to(outside)
    w = make_world(tmp_path / "w")
    # glasskey.toml beside the vault cannot widen the allowlist
    (w.root / "glasskey.toml").write_text(f'[command]\nallowed_dirs = ["{outside.parent}"]\n')
    for target in (outside, link):
        with pytest.raises(UsageError, match="not under a directory the site allows"):
            w.vault.add_credential(w.s("bob"), CredentialSpec(
                "c", connector="command", target=str(target)))
        with pytest.raises(ConnectorError, match="not under a directory the site allows"):
            connector(target).verify(SecretValue("some-value-1"))
    assert not (outside.parent / "RAN").exists()
    inside = script(allowed, "json.load(sys.stdin)\nsys.exit(0)\n", name="ok.py")
    assert connector(inside).verify(SecretValue("some-value-1")) is True


def test_no_site_policy_means_no_command_targets(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLASSKEY_SITE_CONFIG", str(tmp_path / "absent.toml"))
    target = script(tmp_path, "open(os.path.join(OUT, 'RAN'), 'w')\nsys.exit(0)\n")
    with pytest.raises(ConnectorError, match="not under a directory the site allows"):
        connector(target).verify(SecretValue("some-value-1"))
    assert not (tmp_path / "RAN").exists()


def test_a_requester_cannot_choose_where_an_onboarding_secret_goes(cli: Cli) -> None:
    """The finding: a requester-only operator named her own script as the
    onboarding target, and it ran in bob's process at every sweep."""
    evil = script(cli.root / "scripts", """
        open(os.path.join(OUT, "RAN"), "w").write("ran")
        sys.exit(0)
    """)
    fresh_step()
    r = cli("onboard", "issue", "--identity", "svc-x", "--reason", "r", "--ticket", "T-1",
            "--channel", "c", "--expires", "1s", "--connector", "command",
            "--target", str(evil), *cli.as_("alice", 0))
    assert r.code == 1, (r.code, r.err)
    assert one_sentence(r.err) and "only an admin" in r.err, r.err
    r = cli("cred", "list", "--json")
    assert r.code == 0, r.err
    assert "onboard-svc-x" not in r.out
    assert not (evil.parent / "RAN").exists()


def test_a_requester_may_use_a_site_template(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = tmp_path / "allowed"
    target = script(allowed, "json.load(sys.stdin)\nsys.exit(0)\n", name="onboard.py")
    site_policy(tmp_path, monkeypatch,
                f'[command]\nallowed_dirs = ["{allowed}"]\n'
                f'[onboarding.templates.wifi]\nconnector = "command"\ntarget = "{target}"\n'
                '[onboarding.templates.wifi.options]\ntimeout = "5"\n')
    w = make_world(tmp_path / "w")
    alice = w.s("alice")  # requester only
    with pytest.raises(PolicyError, match="only an admin"):
        w.vault.issue_onboarding(alice, "guest", "r", "t", "c", connector="command",
                                 target=str(target))
    with pytest.raises(UsageError, match="no onboarding template"):
        w.vault.issue_onboarding(alice, "guest", "r", "t", "c", template="nope")
    co = w.vault.issue_onboarding(alice, "guest", "r", "t", "c", template="wifi")
    cred = w.vault.credential(co.cred_name)
    assert (cred.connector, cred.target) == ("command", str(target))
    # an admin may still choose freely
    w.vault.issue_onboarding(w.s("bob"), "svc", "r", "t", "c", connector="command",
                             target=str(target))
