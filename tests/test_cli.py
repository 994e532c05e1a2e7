"""The scripting interface, end to end through the real console script.

DESIGN.md: every command takes --json and --vault; errors are one sentence on
stderr, never a traceback; exit codes 0 ok, 1 refused, 2 usage, 3 integrity.
Real time and real TOTP codes are used (the CLI has no clock override on
purpose: a time override would be a way around expiry).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest

SEEDS = {"alice": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "bob": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"}
CANARY = "canary-CLI-7f3a9c1e-do-not-leak"


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    root: Path
    env: dict[str, str]

    def __call__(self, *args: str, stdin: str | None = None) -> Run:
        proc = subprocess.run([sys.executable, "-m", "tui.cli", *args], env=self.env,
                              capture_output=True, text=True, input=stdin, timeout=120)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def as_(self, who: str, offset: int) -> list[str]:
        code = pyotp.TOTP(SEEDS[who]).at(time.time() + offset)
        return ["--as", who, "--totp", code, "--passphrase-file", str(self.root / f"{who}.pass")]


def fresh_step() -> None:
    """Start a TOTP sequence with at least 12 s left in the current 30 s step."""
    while time.time() % 30 > 18:
        time.sleep(0.5)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = dict(os.environ, GLASSKEY_VAULT=str(tmp_path / "vault"),
               GLASSKEY_STATE_DIR=str(tmp_path / "state"),
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    env.pop("GLASSKEY_INSECURE_FAST_KDF", None)
    ops = [{"name": n, "roles": r, "passphrase": f"{n} cli passphrase", "totp_secret": SEEDS[n]}
           for n, r in (("alice", ["requester"]), ("bob", ["approver", "admin"]))]
    for n in SEEDS:
        (tmp_path / f"{n}.pass").write_text(f"{n} cli passphrase\n")
    (tmp_path / "ops.json").write_text(json.dumps(ops))
    c = Cli(tmp_path, env)
    r = c("init", "--operators-file", str(tmp_path / "ops.json"), "--json",
          "--kdf-seconds", "0.01")
    assert r.code == 0, r.err
    assert json.loads(r.out)["operators"][0]["status"] == "active"
    return c


def one_sentence(err: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in err


def test_a_whole_checkout_scripted_from_the_readme(cli: Cli) -> None:
    (cli.root / "secret").write_text(CANARY + "\n")
    fresh_step()
    r = cli("cred", "add", "db-root", "--secret-file", str(cli.root / "secret"),
            *cli.as_("bob", -30))
    assert r.code == 0, r.err
    r = cli("request", "db-root", "--reason", "primary down", "--ticket", "INC-42",
            "--duration", "30m", "--json", *cli.as_("alice", -30))
    assert r.code == 0, r.err
    req = json.loads(r.out)["id"]
    r = cli("approve", req, "--json", *cli.as_("bob", 0))
    assert r.code == 0 and json.loads(r.out)["state"] == "approved", r.err
    r = cli("reveal", req, *cli.as_("alice", 0))
    assert r.code == 0 and r.out == CANARY + "\n", r.err
    r = cli("request", "list", "--json")
    assert [c["state"] for c in json.loads(r.out)] == ["checked-out"]
    r = cli("checkin", req, "--json", *cli.as_("alice", 30))
    assert r.code == 0, r.err
    assert json.loads(r.out)["rotation"] == "committed"
    r = cli("cred", "list", "--json")
    row = json.loads(r.out)[0]
    assert row["version"] == 2 and row["state"] == "active"
    r = cli("audit", "verify", "--json")
    assert r.code == 0 and json.loads(r.out)["ok"] is True
    r = cli("audit", "export", "--format", "csv")
    assert r.code == 0 and "checkout.revealed" in r.out
    # the canary left the vault once, on the reveal's stdout, and nowhere else
    for path in cli.root.rglob("*"):
        if path.is_file() and path.name != "secret":
            assert CANARY.encode() not in path.read_bytes(), path


def test_refusals_and_usage_errors_have_the_documented_exit_codes(cli: Cli) -> None:
    fresh_step()
    r = cli("cred", "add", "db", *cli.as_("bob", -30))
    assert r.code == 0, r.err
    r = cli("request", "db", "--reason", "x", "--ticket", "T", "--duration", "10m",
            *cli.as_("alice", -30))
    req = r.out.strip()
    cases = [
        (cli("approve", req, "--as", "bob", "--totp", "000000", "--passphrase-file",
             str(cli.root / "bob.pass")), 1, "passphrase or TOTP"),
        (cli("approve", req, *cli.as_("alice", 0)), 1, "approver role"),
        (cli("approve", req, "--as", "mallory", "--totp", "123456", "--passphrase-file",
             str(cli.root / "bob.pass")), 2, "no operator named"),
        (cli("request", "db", "--ticket", "T", "--duration", "10m", *cli.as_("alice", 30)),
         2, "reason is required"),
        (cli("request", "db", "--reason", "x", "--ticket", "T", "--duration", "ten"), 2,
         "not understood"),
        (cli("frobnicate"), 2, "invalid choice"),
        (cli("reveal", "r-nope", "--as", "alice"), 2, "passphrase"),
    ]
    for run, code, words in cases:
        assert run.code == code, (words, run.err)
        assert words in run.err, (words, run.err)
        assert one_sentence(run.err), run.err


def test_a_corrupt_vault_exits_3_and_is_left_untouched(cli: Cli) -> None:
    state = cli.root / "vault" / "vault.json"
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])
    before = state.read_bytes()
    for args in (("cred", "list"), ("request", "list", "--json"), ("audit", "verify")):
        r = cli(*args)
        assert r.code == 3, (args, r.err)
        assert one_sentence(r.err), r.err
    assert state.read_bytes() == before


def test_audit_verify_names_the_first_bad_entry(cli: Cli) -> None:
    log = cli.root / "vault" / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    # An admin "promoted" in the signed founding record: entry 1 no longer verifies.
    lines[0] = lines[0].replace(b'"roles":["requester"]', b'"roles":["admin","requester"]', 1)
    assert lines[0] != log.read_bytes().splitlines(keepends=True)[0]
    log.write_bytes(b"".join(lines))
    r = cli("audit", "verify", "--json")
    assert r.code == 3
    assert json.loads(r.out)["first_bad"] == 1
    assert "entry 1" in r.err


def test_emergency_kit_from_the_command_line(cli: Cli) -> None:
    fresh_step()
    assert cli("cred", "add", "db", *cli.as_("bob", -30)).code == 0
    r = cli("kit", "issue", "--json", *cli.as_("alice", -30), "--with", "bob", "--with-totp",
            pyotp.TOTP(SEEDS["bob"]).at(time.time()), "--with-passphrase-file",
            str(cli.root / "bob.pass"))
    assert r.code == 0, r.err
    assert json.loads(r.out)["part_holders"] == ["alice", "bob"]
    assert "GK2" not in r.out  # the issuing terminal sees no part of the kit
    parts = []
    for who, offset in (("alice", 0), ("bob", 30)):
        r = cli("kit", "part", "--json", *cli.as_(who, offset))
        assert r.code == 0, r.err
        parts.append(json.loads(r.out)["part"])
    (cli.root / "kit1").write_text(parts[0] + "\n")
    (cli.root / "kit2").write_text(parts[1] + "\n")
    stored = "".join(p.read_text(errors="replace") for p in (cli.root / "vault").rglob("*")
                     if p.is_file())
    assert not any(part in stored or part.replace("-", "") in stored for part in parts)
    r = cli("kit", "use", "db", "--code-file", str(cli.root / "kit1"), "--reason",
            "no approver reachable", "--ticket", "INC-1", "--duration", "15m", "--json",
            *cli.as_("alice", 30))
    assert r.code == 2 and "both parts" in r.err  # one part alone opens nothing
    r = cli("kit", "use", "db", "--code-file", str(cli.root / "kit1"), "--code-file",
            str(cli.root / "kit2"), "--reason",
            "no approver reachable", "--ticket", "INC-1", "--duration", "15m", "--json",
            *cli.as_("alice", 30))
    assert r.code == 0, r.err
    assert json.loads(r.out)["secret"]
    alerts = json.loads(cli("alerts", "--json").out)
    assert any("EMERGENCY KIT USED" in a for a in alerts)
    queue = json.loads(cli("review", "list", "--json").out)
    assert [(i["kind"], i["required"]) for i in queue] == [("emergency", 2)]
    assert cli("kit", "status").out.strip() == "no emergency kit is issued"


def test_report_and_syslog_export_need_no_authentication(cli: Cli) -> None:
    r = cli("report", "custody", "--since", "2000-01-01", "--format", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["audit"]["ok"] is True
    r = cli("audit", "export", "--format", "syslog")
    lines = r.out.splitlines()
    assert r.code == 0 and len(lines) == 1  # the founding, signed by both founders
    assert all(line.startswith("<") and " glasskey - " in line for line in lines)
