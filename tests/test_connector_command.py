"""The command connector with small real scripts written to tmp_path.

Why real processes: the protocol's promises are about process boundaries —
the value travels on stdin only (never argv, readable by any local user in
/proc, and never the environment), exit codes map to success / rejected /
failed, a hung script is killed (with its children) at the timeout, and what a
script prints is scrubbed of the values before it reaches an error message.
Only running an executable shows that.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from glasskey.core.connectors.base import ConnectorSettings
from glasskey.core.connectors.command import MAX_REASON, CommandConnector
from glasskey.core.connectors.registry import make
from glasskey.core.errors import ConnectorError
from glasskey.core.secret import SecretValue

OLD = SecretValue("old-Secret-value-1")
NEW = SecretValue("new-Secret-value-2")


def script(tmp_path: Path, body: str, name: str = "target.py") -> Path:
    """An executable Python script; ``OUT`` is a directory it may write to."""
    path = tmp_path / name
    path.write_text(
        f"#!{sys.executable}\nimport json, os, sys, time\nOUT = {str(tmp_path)!r}\n" + body
    )
    path.chmod(0o755)
    return path


def connector(path: Path | str, **options: str) -> CommandConnector:
    c = make(
        "command",
        ConnectorSettings(credential="cmd-cred", target=str(path), options=options),
    )
    assert isinstance(c, CommandConnector)
    return c


# A fake target system: the "password" lives in a file; set needs the right
# current value (or succeeds when the new value is already there: idempotent).
FAKE_TARGET = """
req = json.load(sys.stdin)
state = os.path.join(OUT, "state")
have = open(state).read() if os.path.exists(state) else None
if req["action"] == "set":
    if have == req["value"]:
        sys.exit(0)
    if have is not None and have != req["current"]:
        print("current value does not match", file=sys.stderr)
        sys.exit(1)
    open(state, "w").write(req["value"])
    print(json.dumps({"message": "password changed"}))
    sys.exit(0)
if req["action"] == "verify":
    sys.exit(0 if have == req["value"] else 1)
sys.exit(3)
"""


def test_set_and_verify_success(tmp_path: Path) -> None:
    c = connector(script(tmp_path, FAKE_TARGET))
    c.set(None, OLD)
    assert c.verify(OLD)
    c.set(OLD, NEW)
    assert c.last_message == "password changed"
    assert c.verify(NEW)
    assert not c.verify(OLD)
    assert c.verify_rejected(OLD)
    assert (tmp_path / "state").read_text() == NEW.reveal()


def test_set_is_idempotent_when_the_script_is(tmp_path: Path) -> None:
    c = connector(script(tmp_path, FAKE_TARGET))
    c.set(None, OLD)
    c.set(OLD, NEW)
    c.set(OLD, NEW)  # retried after a lost reply
    assert c.verify(NEW)


def test_payload_on_stdin(tmp_path: Path) -> None:
    body = """
data = sys.stdin.read()
open(os.path.join(OUT, "stdin.json"), "w").write(data)
"""
    c = connector(script(tmp_path, body), timeout="5", role="db-admin")
    c.set(OLD, NEW)
    req = json.loads((tmp_path / "stdin.json").read_text())
    assert req == {
        "action": "set",
        "credential": "cmd-cred",
        "value": NEW.reveal(),
        "current": OLD.reveal(),
        "options": {"timeout": "5", "role": "db-admin"},
    }
    assert c.verify(NEW)
    req = json.loads((tmp_path / "stdin.json").read_text())
    assert req["action"] == "verify"
    assert req["value"] == NEW.reveal()
    assert req["current"] is None


def test_value_not_on_argv_or_in_environment(tmp_path: Path) -> None:
    body = """
json.load(sys.stdin)
with open(os.path.join(OUT, "seen.json"), "w") as f:
    json.dump({"argv": sys.argv, "environ": dict(os.environ),
               "cmdline": open("/proc/self/cmdline", "rb").read().decode(errors="replace")}, f)
"""
    c = connector(script(tmp_path, body))
    c.set(OLD, NEW)
    c.verify(NEW)
    seen = (tmp_path / "seen.json").read_text()
    assert seen  # the script really ran and recorded what it saw
    assert json.loads(seen)["argv"] == [str(tmp_path / "target.py")]
    assert OLD.reveal() not in seen
    assert NEW.reveal() not in seen


def test_verify_rejected_is_false(tmp_path: Path) -> None:
    c = connector(script(tmp_path, "json.load(sys.stdin)\nsys.exit(1)\n"))
    assert c.verify(NEW) is False
    assert c.verify_rejected(NEW) is True


def test_set_refused_reports_scrubbed_first_stderr_line(tmp_path: Path) -> None:
    body = """
req = json.load(sys.stdin)
sys.stderr.write("policy says no to " + req["value"] + " (was " + req["current"] + ")" + "x" * 500 + "\\n")
sys.stderr.write("second line is not reported\\n")
sys.exit(1)
"""
    c = connector(script(tmp_path, body))
    with pytest.raises(ConnectorError) as info:
        c.set(OLD, NEW)
    message = str(info.value)
    assert "refused the change: policy says no to […] (was […])" in message
    assert NEW.reveal() not in message
    assert OLD.reveal() not in message
    assert "second line" not in message
    assert len(message) < MAX_REASON + 100


def test_scrub_happens_before_truncation(tmp_path: Path) -> None:
    """A value straddling the cut must not leave its prefix behind."""
    body = """
req = json.load(sys.stdin)
sys.stderr.write("x" * 190 + req["value"] + "\\n")
sys.exit(1)
"""
    with pytest.raises(ConnectorError) as info:
        connector(script(tmp_path, body)).set(OLD, NEW)
    assert NEW.reveal()[:8] not in str(info.value)


def test_stdout_message_scrubbed(tmp_path: Path) -> None:
    body = """
req = json.load(sys.stdin)
print(json.dumps({"message": "set to " + req["value"]}))
"""
    c = connector(script(tmp_path, body))
    c.set(OLD, NEW)
    assert c.last_message == "set to […]"


def test_other_exit_code_is_failure_not_rejection(tmp_path: Path) -> None:
    c = connector(
        script(
            tmp_path,
            "json.load(sys.stdin)\nprint('no route to host', file=sys.stderr)\nsys.exit(2)\n",
        )
    )
    with pytest.raises(
        ConnectorError,
        match=r"unreachable or the command failed \(exit status 2\): no route to host",
    ):
        c.verify(NEW)
    with pytest.raises(ConnectorError, match="exit status 2"):
        c.set(OLD, NEW)
    with pytest.raises(ConnectorError):
        c.verify_rejected(OLD)


def test_killed_by_signal_is_failure(tmp_path: Path) -> None:
    c = connector(
        script(
            tmp_path, "import signal\njson.load(sys.stdin)\nos.kill(os.getpid(), signal.SIGKILL)\n"
        )
    )
    with pytest.raises(ConnectorError, match="killed by signal 9"):
        c.verify(NEW)


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_timeout_kills_the_script_and_its_children(tmp_path: Path) -> None:
    body = """
import subprocess
req = json.load(sys.stdin)
print("partial output " + req["value"], flush=True)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(os.path.join(OUT, "child.pid"), "w").write(str(child.pid))
time.sleep(60)
"""
    c = connector(script(tmp_path, body), timeout="0.5")
    t0 = time.monotonic()
    with pytest.raises(ConnectorError, match=r"did not finish within 0.5 s") as info:
        c.set(OLD, NEW)
    # TimeoutExpired holds the partial output; it must not be chained on.
    assert info.value.__context__ is None
    assert time.monotonic() - t0 < 5
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not _alive(child):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the script's child survived the timeout")


def test_script_that_ignores_stdin(tmp_path: Path) -> None:
    c = connector(script(tmp_path, "sys.exit(0)\n"))
    c.set(OLD, NEW)
    assert c.verify(NEW)


def test_bad_targets(tmp_path: Path) -> None:
    not_exec = tmp_path / "plain.txt"
    not_exec.write_text("#!/bin/sh\nexit 0\n")
    for target in (
        None,
        "relative/script",
        str(tmp_path / "missing"),
        str(not_exec),
        str(tmp_path),
    ):
        c = CommandConnector(ConnectorSettings(credential="c", target=target))
        with pytest.raises(ConnectorError):
            c.verify(NEW)
    c = connector(script(tmp_path, "sys.exit(0)\n"), timeout="soon")
    with pytest.raises(ConnectorError, match="timeout"):
        c.verify(NEW)


def test_exec_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage"
    bad.write_bytes(b"\x00\x01\x02 not an executable")
    bad.chmod(0o755)
    with pytest.raises(ConnectorError, match="cannot run"):
        connector(bad).verify(NEW)
