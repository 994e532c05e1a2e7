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
        proc = subprocess.run([sys.executable, "-m", "glasskey.tui.cli", *args], env=self.env,
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
        (cli("reveal", "r-nope", "--as", "alice"), 2, "no request 'r-nope'"),  # before auth
        (cli("reveal", req, "--as", "alice"), 2, "passphrase"),
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


# ==== issue 11: a correct CLI ======================================================================
def test_vault_and_json_mean_the_same_before_or_after_the_command(cli: Cli, tmp_path: Path
                                                                  ) -> None:
    real = str(cli.root / "vault")
    cli.env["GLASSKEY_VAULT"] = str(tmp_path / "not-this-one")
    for args in (("--vault", real, "--json", "operator", "list"),
                 ("operator", "list", "--vault", real, "--json"),
                 ("--json", "operator", "list", "--vault", real)):
        r = cli(*args)
        assert r.code == 0, (args, r.err)
        assert [o["name"] for o in json.loads(r.out)] == ["alice", "bob"]
    r = cli("--vault", real, "alerts")
    assert r.code == 0 and "no emergency kit" in r.out, r.err
    # init honours --vault before the command too (it used to create the default vault)
    other = tmp_path / "other"
    r = cli("--vault", str(other), "init", "--operators-file", str(cli.root / "ops.json"),
            "--kdf-seconds", "0.01", "--json")
    assert r.code == 0, r.err
    assert (other / "vault.json").exists() and not (tmp_path / "not-this-one").exists()
    r = cli("--vault", real, "operator", "list", "--vault", str(other))
    assert r.code == 2 and "twice" in r.err


def test_options_of_other_actions_are_refused(cli: Cli) -> None:
    for args, words in (
        (("operator", "list", "--roles", "admin", "--sweep"), "does not apply to 'operator list'"),
        (("cred", "list", "--k", "3", "--secret-file", "x"), "does not apply to 'cred list'"),
        (("request", "list", "--reason", "x"), "--reason does not apply to 'request list'"),
        (("audit", "verify", "--to", "h:1"), "--to does not apply"),
        (("operator", "list", "alice"), "takes no name"),
        (("kit", "status", "--reason", "x"), "does not apply to 'kit status'"),
    ):
        r = cli(*args)
        assert r.code == 2, (args, r.err)
        assert words in r.err and one_sentence(r.err), r.err


def test_a_credential_named_list_can_be_requested(cli: Cli) -> None:
    fresh_step()
    assert cli("cred", "add", "list", *cli.as_("bob", -30)).code == 0
    r = cli("request", "--cred", "list", "--reason", "r", "--ticket", "T", "--duration", "10m",
            "--json", *cli.as_("alice", -30))
    assert r.code == 0, r.err
    assert json.loads(r.out)["credential"] == "list"
    assert cli("cancel", json.loads(r.out)["id"], *cli.as_("alice", 0)).code == 0
    r = cli("request", "--reason", "r", "--ticket", "T", "--duration", "10m", "--json",
            *cli.as_("alice", 30), "--", "list")
    assert r.code == 0, r.err
    assert json.loads(r.out)["credential"] == "list"
    r = cli("request", "list", "--json")  # still the list command
    assert r.code == 0 and [c["credential"] for c in json.loads(r.out)] == ["list"]
    r = cli("request", "list", "--cred", "list")
    assert r.code == 2 and "--cred does not apply to 'request list'" in r.err


def test_version_help_and_completion(cli: Cli) -> None:
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("glasskey ")
    from glasskey.tui.cli import DOCS, build_parser, completion_script

    parser = build_parser()
    assert set(parser.subcommands) == set(DOCS)
    for name, sub in parser.subcommands.items():
        text = sub.format_help()
        assert DOCS[name][0].split(" ")[0] in text and "example:\n  glasskey " + name in text
    assert "(required)" in parser.subcommands["request"].format_help()
    r = cli("deny", "--help")
    assert r.code == 0 and "example:" in r.out and "(required" in r.out
    r = cli("deny", "r-1")
    assert r.code == 2 and "--reason" in r.err  # required options are enforced
    script = cli("completion", "bash").out
    assert script == completion_script(parser, "bash")
    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in ("glasskey", *words))
        out = subprocess.run(
            ["bash", "-c", f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; '
             '_glasskey; printf "%s\\n" "${COMPREPLY[@]}"'],
            capture_output=True, text=True, check=True).stdout
        return out.split()
    assert complete("oper") == ["operator"]
    assert complete("--vault", "/x", "oper") == ["operator"]
    assert complete("operator", "re") == ["reactivate", "remove"]
    assert "--duration" in complete("request", "--d")
    assert {"--kind", "--k"} <= set(complete("cred", "--k"))
    for shell in ("zsh", "fish"):
        r = cli("completion", shell)
        assert r.code == 0 and "glasskey" in r.out
    assert "complete -c glasskey -n __fish_use_subcommand -a request" in cli(
        "completion", "fish").out


def test_errors_are_json_under_json_and_times_are_iso(cli: Cli) -> None:
    r = cli("--json", "request", "nope", "--reason", "r", "--ticket", "T", "--duration", "1m",
            "--as", "alice")
    assert r.code == 2
    assert json.loads(r.out) == {"error": "there is no credential named 'nope'", "exit": 2}
    assert one_sentence(r.err)
    r = cli("frobnicate", "--json")
    assert r.code == 2 and json.loads(r.out)["exit"] == 2
    fresh_step()
    assert cli("cred", "add", "db", *cli.as_("bob", -30)).code == 0
    assert cli("request", "db", "--reason", "r", "--ticket", "T", "--duration", "1h30m",
               *cli.as_("alice", -30)).code == 0
    row = json.loads(cli("request", "list", "--json").out)[0]
    assert row["duration"] == 5400
    import re
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["created"]), row
    ops = json.loads(cli("operator", "list", "--json").out)
    assert ops[0]["locked_until"] is None


def test_durations_are_strict(cli: Cli) -> None:
    for bad in ("30x", "30", "1m30h", "h", "-5m"):
        r = cli("request", "--cred", "db", "--reason", "r", "--ticket", "T",
                "--duration", bad, "--as", "alice")
        assert r.code == 2, (bad, r.err)
    from glasskey.core.models import parse_duration
    assert [parse_duration(t) for t in ("90s", "30m", "1h30m", "2h", "1h0m5s")] == [
        90, 1800, 5400, 7200, 3605]
    for bad in ("30x", "30", "", "1m30h", "30 m", "2hh"):
        with pytest.raises(Exception, match="90s, 30m, 1h30m or 2h"):
            parse_duration(bad)


def test_a_typo_does_not_burn_the_totp_code(cli: Cli) -> None:
    fresh_step()
    assert cli("cred", "add", "db", *cli.as_("bob", -30)).code == 0
    alice = cli.as_("alice", 0)
    r = cli("request", "dbb", "--reason", "r", "--ticket", "T", "--duration", "5m", *alice)
    assert r.code == 2 and "no credential named 'dbb'" in r.err
    r = cli("request", "db", "--reason", "r" * 5000, "--ticket", "T", "--duration", "5m",
            *alice)
    assert r.code == 2 and "at most" in r.err
    r = cli("review", "v-nope", "--outcome", "ok", *alice)
    assert r.code == 1 and "not waiting for review" in r.err
    r = cli("request", "db", "--reason", "r", "--ticket", "T", "--duration", "5m", *alice)
    assert r.code == 0, r.err  # the same code still works: it was never spent
    # an unknown operator is refused before any passphrase is read
    r = cli("approve", r.out.strip(), "--as", "mallory", "--totp", "123456",
            "--passphrase-file", "/nonexistent")
    assert r.code == 2 and "no operator named 'mallory'" in r.err


def test_a_totp_key_is_never_read_from_argv(cli: Cli) -> None:
    seed = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"
    r = cli("operator", "add", "carol", "--roles", "approver", "--totp-secret", seed)
    assert r.code == 2 and "--totp-secret-file" in r.err and seed not in r.err
    (cli.root / "carol.pass").write_text("carol cli passphrase\n")
    fresh_step()
    r = cli("operator", "add", "carol", "--roles", "approver", "--totp-secret-file", "-",
            "--new-passphrase-file", str(cli.root / "carol.pass"), "--json",
            *cli.as_("bob", -30), "--with", "alice", "--with-totp",
            pyotp.TOTP(SEEDS["alice"]).at(time.time() - 30), "--with-passphrase-file",
            str(cli.root / "alice.pass"), stdin=seed + "\n")
    assert r.code == 0, r.err
    assert json.loads(r.out)["status"] == "active"
    from glasskey.core.vault import Vault

    # the key read from stdin is carol's: her authenticator's code unlocks
    Vault(cli.root / "vault", allow_weak_kdf=True).unlock("carol", "carol cli passphrase", pyotp.TOTP(seed).now())


def test_an_internal_error_is_typed_and_exits_4(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from glasskey.tui import cli as cli_mod
    from glasskey.tui.cli import audit

    def boom(ctx: object) -> int:
        raise KeyError("x")

    monkeypatch.setattr(audit, "alerts", boom)
    monkeypatch.delenv("GLASSKEY_DEBUG", raising=False)
    code = cli_mod.main(["alerts", "--json", "--vault", str(cli.root / "vault")])
    out, err = capsys.readouterr()
    assert code == 4
    assert json.loads(out) == {"error": "internal error (KeyError); set GLASSKEY_DEBUG=1 to "
                               "see details", "exit": 4}
    assert "usage" not in err


# ==== issue 11: oversized input and terminal injection ============================================
EVIL = "\x1b]52;c;aGFja2Vk\x07\x1b[2J\x9b31m\x1b]0;pwned\x07\x07\x7f\u202e"


def test_a_70000_character_reason_is_refused_and_nothing_is_stored(cli: Cli) -> None:
    fresh_step()
    assert cli("cred", "add", "db", *cli.as_("bob", -30)).code == 0
    log = cli.root / "vault" / "audit.jsonl"
    before = log.read_bytes()
    r = cli("request", "db", "--reason", "x" * 70_000, "--ticket", "T", "--duration", "5m",
            "--json", *cli.as_("alice", -30))
    assert r.code == 2 and json.loads(r.out)["exit"] == 2
    assert "70,000 characters" in r.err and one_sentence(r.err)
    assert log.read_bytes() == before
    assert cli("audit", "verify").code == 0


def test_no_control_character_reaches_the_terminal_from_the_cli(cli: Cli) -> None:
    from glasskey.core.clock import FakeClock
    from glasskey.core.credentials import CredentialSpec
    from glasskey.core.vault import Vault

    vault = Vault(cli.root / "vault", FakeClock(time.time()), allow_weak_kdf=True)
    fresh_step()
    bob = vault.unlock("bob", "bob cli passphrase", pyotp.TOTP(SEEDS["bob"]).at(time.time()))
    alice = vault.unlock("alice", "alice cli passphrase",
                         pyotp.TOTP(SEEDS["alice"]).at(time.time()))
    vault.add_credential(bob, CredentialSpec(name="db"))
    vault.add_credential(bob, CredentialSpec(name="db2"))
    vault.request(alice, "db", "why " + EVIL, "INC-" + EVIL, 600)
    denied = vault.request(alice, "db2", "r " + EVIL, "T" + EVIL, 600)
    vault.deny(bob, denied.id, "no " + EVIL)
    vault.issue_onboarding(alice, "dave", "hire " + EVIL, "HR" + EVIL, "chan " + EVIL, 3600)
    with vault.store.transaction() as txn:
        vault.services.reviews.queue(txn, "v-evil", "emergency", "db", "alice", "used " + EVIL,
                            required=2)
    runs = [cli("request", "list"), cli("request", "list", "--all"), cli("review", "list"),
            cli("alerts"), cli("onboard", "list"), cli("operator", "list"), cli("cred", "list"),
            cli("approve", "r-" + EVIL, "--as", "bob"), cli("request", "db" + EVIL),
            cli("request", "list", "--json"), cli("review", "list", "--json")]
    for r in runs:
        for stream in (r.out, r.err):
            bad = [c for c in stream if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F
                   or c == "\u202e"]
            assert not bad, (bad, stream)
    assert "\\x1b]52;c;" in runs[0].out and "\\x9b" in runs[0].out  # visible, escaped
    assert "\\x1b[2J" in runs[2].out and "\\x1b" in runs[3].out


def test_make_sysdeps_says_what_to_install_without_root(tmp_path: Path) -> None:
    """`make test` on a fresh machine: the sysdeps step names the missing packages and how
    to get them when it cannot install (not root, no sudo), instead of 17 confusing errors."""
    import shutil as sh

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ls", "sh"):
        (bin_dir / tool).symlink_to(sh.which(tool) or f"/bin/{tool}")
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    script = Path(__file__).resolve().parent.parent / ".ci" / "sysdeps"
    proc = subprocess.run([str(bin_dir / "sh"), str(script)], env={"PATH": str(bin_dir)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "tmux" in proc.stderr and "chromium" in proc.stderr and "ldap-utils" in proc.stderr
    assert "as root" in proc.stderr
    # with everything present it only checks, and succeeds
    assert subprocess.run(["sh", str(script)], capture_output=True, timeout=30).returncode == 0


def test_the_holder_reveals_again_and_extends_from_the_cli(cli: Cli) -> None:
    (cli.root / "secret").write_text(CANARY + "\n")
    fresh_step()
    assert cli("cred", "add", "db", "--secret-file", str(cli.root / "secret"),
               *cli.as_("bob", -30)).code == 0
    req = cli("request", "db", "--reason", "r", "--ticket", "T", "--duration", "10m",
              *cli.as_("alice", -30)).out.strip()
    assert cli("approve", req, *cli.as_("bob", 0)).code == 0
    assert cli("reveal", req, *cli.as_("alice", 0)).out == CANARY + "\n"
    r = cli("reveal", req, "--again", *cli.as_("alice", 30))
    assert r.code == 0 and r.out == CANARY + "\n", r.err
    time.sleep(max(0.0, 30 - time.time() % 30) + 0.5)  # the next step: +30 is new again
    r = cli("extend", req, "--by", "20m", "--json", *cli.as_("alice", 30))
    assert r.code == 0, r.err
    assert json.loads(r.out)["lease_expires"].endswith("Z")
    r = cli("audit", "export", "--format", "jsonl")
    events = [json.loads(line)["event"] for line in r.out.splitlines()]
    assert events.count("checkout.revealed") == 1 and "checkout.redisplayed" in events
    assert "checkout.extended" in events


def test_import_from_a_real_keepassxc_database(cli: Cli) -> None:
    """The database is made here with pykeepass (KDBX 4, Argon2), as KeePassXC writes it."""
    from pykeepass import create_database

    db = cli.root / "breakglass.kdbx"
    kp = create_database(str(db), password="kp master pass")
    ops = kp.add_group(kp.root_group, "ops")
    kp.add_entry(ops, "prod-db-root", "postgres", "kp-secret-db-" + CANARY)
    kp.add_entry(kp.root_group, "aws-root", "root", "kp-secret-aws-" + CANARY)
    kp.add_entry(kp.root_group, "no-password", "x", "")
    gone = kp.add_entry(kp.root_group, "old-thing", "x", "kp-secret-old")
    kp.trash_entry(gone)
    kp.save()
    (cli.root / "kp.pass").write_text("kp master pass\n")
    fresh_step()
    r = cli("cred", "import", "--from-kdbx", str(db), "--kdbx-password-file", "-",
            "--as", "bob", "--totp", pyotp.TOTP(SEEDS["bob"]).at(time.time() - 30),
            "--passphrase-file", str(cli.root / "bob.pass"), "--json",
            stdin="kp master pass\n")
    assert r.code == 0, r.err
    assert json.loads(r.out) == {"imported": 2}
    rows = json.loads(cli("cred", "list", "--json").out)
    assert sorted((c["name"], c["connector"]) for c in rows) == [
        ("aws-root", "manual"), ("prod-db-root", "manual")]
    # the value is the entry's password: reveal it through a normal checkout
    req = cli("request", "prod-db-root", "--reason", "r", "--ticket", "T", "--duration", "5m",
              *cli.as_("alice", -30)).out.strip()
    assert cli("approve", req, *cli.as_("bob", 0)).code == 0
    assert cli("reveal", req, *cli.as_("alice", 0)).out == "kp-secret-db-" + CANARY + "\n"
    # nothing of the database's values is stored in clear
    for path in (cli.root / "vault").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    r = cli("cred", "import", "--from-kdbx", str(db), "--kdbx-password-file",
            str(cli.root / "bob.pass"))
    assert r.code == 2 and "master password" in r.err
