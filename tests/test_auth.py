"""Unlocking: TOTP one-time use (A3, C4 under time zones), failure limiting
(A4) and passphrase handling (A5)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import random
import signal
import struct
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyotp
import pytest
from glasskey.core import canonical, totp
from glasskey.core.chain import verify_log
from glasskey.core.clock import FakeClock
from glasskey.core.crypto import kdf
from glasskey.core.errors import AuthError, IntegrityError
from glasskey.core.operators import AUTH_FAILED
from glasskey.core.store import Store
from glasskey.core.vault import Vault
from helpers import START, STEP, VaultEnv, make_vault, tamper_state, worker_unlock

SOAK = os.environ.get("GLASSKEY_SOAK") == "1"
VECTORS = Path(__file__).parent / "vectors" / "rfc6238_totp.json"


def _last_events(env: VaultEnv, n: int = 1) -> list[dict[str, Any]]:
    lines = (env.root / "audit.jsonl").read_bytes().splitlines()
    return [json.loads(x) for x in lines[-n:]]


def _totp_state(env: VaultEnv, name: str = "alice") -> dict[str, Any]:
    return dict(env.operator_doc(name)["totp"])


def _refused(env: VaultEnv, name: str, code: str, passphrase: str | None = None,
             vault: Vault | None = None) -> AuthError:
    with pytest.raises(AuthError) as info:
        (vault or env.vault).unlock(name, passphrase or env.passphrases[name], code)
    return info.value


# -- A3: TOTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_a3_adjacent_steps_accepted(vault2: VaultEnv, offset: int) -> None:
    vault2.clock.advance(10 * STEP)
    session = vault2.vault.unlock("alice", vault2.passphrases["alice"],
                                  vault2.code("alice", offset))
    assert session.name == "alice"
    assert _totp_state(vault2)["last_step"] == vault2.step() + offset


@pytest.mark.parametrize("offset", [-2, 2, -3, 3, 60])
def test_a3_steps_further_away_refused(vault2: VaultEnv, offset: int) -> None:
    vault2.clock.advance(10 * STEP)
    error = _refused(vault2, "alice", vault2.code("alice", offset))
    assert str(error) == AUTH_FAILED
    assert _totp_state(vault2)["last_step"] == 0


def test_a3_malformed_codes_refused(vault2: VaultEnv) -> None:
    good = vault2.code("alice")
    for code in ("", "12345", "1234567", "abcdef", good + "0", "0" + good, "-" + good[1:]):
        assert str(_refused(vault2, "alice", code)) == AUTH_FAILED
        vault2.clock.advance(3700)  # out of any lockout
    vault2.unlock("alice")


def test_a3_replay_refused_and_last_step_persisted(vault2: VaultEnv) -> None:
    code = vault2.code("alice")
    vault2.vault.unlock("alice", vault2.passphrases["alice"], code)
    step = vault2.step()
    raw = json.loads((vault2.root / "vault.json").read_bytes())
    assert raw["operators"]["alice"]["totp"]["last_step"] == step  # on disk, not in memory
    assert str(_refused(vault2, "alice", code)) == AUTH_FAILED
    other_process = vault2.reopen(FakeClock(vault2.clock.now()))
    assert str(_refused(vault2, "alice", code, vault=other_process)) == AUTH_FAILED
    assert str(_refused(vault2, "alice", vault2.code("alice", -1))) == AUTH_FAILED
    assert _last_events(vault2)[0]["event"] == "auth.failed"
    assert _last_events(vault2)[0]["details"]["why"] == "replay"
    # bob's step is his own
    vault2.vault.unlock("bob", vault2.passphrases["bob"], vault2.code("bob"))


def test_a3_clock_set_back_reenables_nothing(vault2: VaultEnv) -> None:
    t0 = vault2.clock.now()
    vault2.vault.unlock("alice", vault2.passphrases["alice"], vault2.code("alice", 1))
    accepted = _totp_state(vault2)["last_step"]
    for back in (30, 60, 90, 3600, 86400 * 365):
        vault2.clock.set(t0 - back)
        for offset in (-1, 0, 1):
            _refused(vault2, "alice", vault2.code("alice", offset))  # replay or lockout
    vault2.clock.set(t0)
    for offset in (-1, 0, 1):  # steps up to the accepted one stay spent
        _refused(vault2, "alice", vault2.code("alice", offset))
    assert _totp_state(vault2)["last_step"] == accepted
    vault2.clock.set(t0 + 2 * STEP + 3700)  # past the accepted step and any lockout
    vault2.vault.unlock("alice", vault2.passphrases["alice"], vault2.code("alice"))


# C4 / A3: known answers, independent of the local time zone -------------------------------

TIMEZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe",
             "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns", "Etc/GMT+12",
             "Pacific/Kiritimati"]
# DST changes (UTC instants): New York spring forward 2021-03-14 07:00Z, fall back
# 2021-11-07 06:00Z (the repeated hour), London fall back 2021-10-31 01:00Z,
# Lord Howe (30-minute shift) 2021-04-03 15:00Z.
DST_CHANGES = [1615705200, 1636264800, 1635642000, 1617462000]


@contextmanager
def _tz(name: str) -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def _hotp(key: bytes, counter: int, digits: int = 6, digest: str = "sha1") -> str:
    """RFC 4226 section 5.3, written out independently of pyotp and core.totp."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10**digits
    return str(code).zfill(digits)


def test_c4_reference_hotp_matches_rfc4226_appendix_d() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314",
                "254676", "287922", "162583", "399871", "520489"]
    key = b"12345678901234567890"
    assert [_hotp(key, i) for i in range(10)] == expected
    hotp = pyotp.HOTP(base64.b32encode(key).decode())
    assert [hotp.at(i) for i in range(10)] == expected


@pytest.mark.parametrize("zone", TIMEZONES)
def test_a3_rfc6238_vectors_under_time_zones(zone: str) -> None:
    vectors = json.loads(VECTORS.read_text())["vectors"]
    assert len(vectors) == 18
    with _tz(zone):
        for v in vectors:
            key = v["seed_ascii"].encode()
            seed = base64.b32encode(key).decode()
            digest = getattr(hashlib, v["algorithm"].lower())
            t = int(v["time"])
            assert pyotp.TOTP(seed, digits=8, digest=digest).at(t) == v["totp"], v
            assert _hotp(key, t // 30, 8, v["algorithm"].lower()) == v["totp"], v
            if v["algorithm"] == "SHA1":
                # glasskey's 6-digit SHA-1 codes are the low 6 digits of the 8-digit ones
                assert totp.code_at(seed.rstrip("="), t) == v["totp"][-6:]
                assert totp.matching_step(seed.rstrip("="), v["totp"][-6:], t) == t // 30


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Australia/Lord_Howe"])
def test_a3_codes_across_dst_changes(zone: str) -> None:
    seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    key = base64.b32decode(seed)
    with _tz(zone):
        for change in DST_CHANGES:
            for t in range(change - 5400, change + 5400, 7 * STEP + 1):
                expected = _hotp(key, t // STEP)
                assert totp.code_at(seed, t) == expected, (zone, t)
                assert totp.matching_step(seed, expected, t) == t // STEP


def test_a3_unlock_across_dst_change_in_local_zone(tmp_path: Path) -> None:
    """A whole vault, with its clock in the repeated hour of a DST change."""
    with _tz("America/New_York"):
        env = make_vault(tmp_path, start=float(DST_CHANGES[1] - 1800))
        for _ in range(8):  # through the repeated hour, a step at a time
            env.clock.advance(450)
            env.unlock("alice")
        with pytest.raises(AuthError):
            env.vault.unlock("alice", env.passphrases["alice"], env.code("alice"))


@pytest.mark.slow
def test_a3_two_processes_same_code_exactly_one_success(vault2: VaultEnv) -> None:
    trials = 500 if SOAK else 20
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    jobs = [ctx.Queue(), ctx.Queue()]
    results: Any = ctx.Queue()
    procs = [ctx.Process(target=worker_unlock,
                         args=(str(vault2.root), os.environ["GLASSKEY_STATE_DIR"], "alice",
                               vault2.passphrases["alice"], barrier, q, results))
             for q in jobs]
    for p in procs:
        p.start()
    outcomes: list[list[str]] = []
    try:
        for trial in range(trials):
            # Far enough apart that an earlier replay's lockout has always expired.
            t = START + (trial + 1) * 4000.0
            code = totp.code_at(vault2.seeds["alice"], t)
            for q in jobs:
                q.put((t, code))
            outcomes.append(sorted([results.get(timeout=60), results.get(timeout=60)]))
    finally:
        for q in jobs:
            q.put(None)
        for p in procs:
            p.join(30)
    bad = [(i, o) for i, o in enumerate(outcomes)
           if o[1] != "ok" or o[0] != f"AuthError: {AUTH_FAILED}"]
    assert not bad, bad[:5]
    assert verify_log(Store(vault2.root).audit).ok


# -- A4: failure limiting -------------------------------------------------------------------


def _spy_derivations(monkeypatch: pytest.MonkeyPatch, env: VaultEnv,
                     name: str = "alice") -> list[int]:
    """Record the on-disk failure count at each Argon2id derivation."""
    seen: list[int] = []
    real = kdf.derive_key

    def spy(passphrase: str, params: kdf.KdfParams, **kw: Any) -> bytes:
        seen.append(int(env.operator_doc(name)["totp"]["failures"]))
        return real(passphrase, params, **kw)

    monkeypatch.setattr(kdf, "derive_key", spy)
    return seen


def test_a4_failure_counted_durably_before_the_answer(vault2: VaultEnv,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_derivations(monkeypatch, vault2)
    assert _totp_state(vault2)["failures"] == 0
    _refused(vault2, "alice", vault2.code("alice"), passphrase="wrong passphrase, long")
    assert seen == [1]  # already on disk while the key was being derived
    assert _totp_state(vault2)["failures"] == 1  # and when the answer came
    last = _last_events(vault2)[0]
    assert (last["event"], last["subject"], last["details"]["failures"]) == (
        "auth.failed", "alice", 1)
    _refused(vault2, "alice", "000000" if vault2.code("alice") != "000000" else "111111")
    assert seen == [1, 2] and _totp_state(vault2)["failures"] == 2
    vault2.unlock("alice")
    assert _totp_state(vault2)["failures"] == 0


def test_a4_lockout_with_back_off(vault2: VaultEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_derivations(monkeypatch, vault2)
    wrong = "not alice's passphrase"
    for i in range(totp.MAX_FAILURES):
        _refused(vault2, "alice", vault2.code("alice"), passphrase=wrong)
        assert _totp_state(vault2)["failures"] == i + 1
    state = _totp_state(vault2)
    assert state["locked_until"] == pytest.approx(vault2.clock.now() + 30)
    derivations = len(seen)
    # Locked: even the right passphrase and code are refused, without deriving.
    error = _refused(vault2, "alice", vault2.code("alice"))
    assert "locked" in str(error)
    assert len(seen) == derivations
    assert _last_events(vault2)[0]["event"] == "auth.locked"
    vault2.clock.advance(29)
    assert "locked" in str(_refused(vault2, "alice", vault2.code("alice")))
    # After the lock: one more failure doubles the back-off.
    vault2.clock.advance(2)
    _refused(vault2, "alice", vault2.code("alice"), passphrase=wrong)
    assert _totp_state(vault2)["locked_until"] == pytest.approx(vault2.clock.now() + 60)
    vault2.clock.advance(31)
    assert "locked" in str(_refused(vault2, "alice", vault2.code("alice")))
    vault2.clock.advance(30)
    vault2.unlock("alice")
    state = _totp_state(vault2)
    assert (state["failures"], state["locked_until"]) == (0, 0.0)
    # bob was never affected
    vault2.unlock("bob")


def test_a4_back_off_schedule() -> None:
    assert [totp.lockout_seconds(n) for n in range(4, 10)] == [0, 30, 60, 120, 240, 480]
    assert totp.lockout_seconds(100) == totp.MAX_LOCKOUT


def _failed_unlock_hanging_in_kdf(root: Path, name: str, t: float, ready_fd: int) -> None:
    """Child: a wrong-passphrase unlock that stops inside Argon2id (to be killed)."""
    def hang(*args: Any, **kw: Any) -> bytes:
        os.write(ready_fd, b"k")
        time.sleep(60)
        raise AssertionError("not killed")

    kdf.derive_key = hang  # type: ignore[assignment]  # this process only
    Vault(root, FakeClock(t), allow_weak_kdf=True).unlock(name, "a wrong passphrase here", "000000")


def _failed_unlock_loop(root: Path, name: str, t: float, ready_fd: int) -> None:
    clock = FakeClock(t)
    vault = Vault(root, clock, allow_weak_kdf=True)
    os.write(ready_fd, b"s")
    while True:
        clock.advance(4000)  # never inside a lockout
        try:
            vault.unlock(name, "a wrong passphrase here", "000000")
        except AuthError:
            os.write(ready_fd, b"f")


def _fork(target: Any, *args: Any) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            target(*args, w)
        finally:
            os._exit(0)
    os.close(w)
    return pid, r


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the child ended on its own"


def test_a4_kill_during_failed_attempt_never_lowers_counter(vault2: VaultEnv) -> None:
    for i in range(3):
        before = _totp_state(vault2)["failures"]
        pid, r = _fork(_failed_unlock_hanging_in_kdf, vault2.root, "alice",
                       START + i * 10_000.0)
        assert os.read(r, 1) == b"k"  # inside the derivation now
        _kill(pid)
        os.close(r)
        assert _totp_state(vault2)["failures"] == before + 1
    assert verify_log(Store(vault2.root).audit).ok
    assert vault2.reopen().verify_audit().ok


@pytest.mark.slow
def test_a4_random_kills_counter_monotonic(vault2: VaultEnv) -> None:
    trials = 100 if SOAK else 10
    rng = random.Random(44)
    history = [0]
    answered = 0
    for trial in range(trials):
        pid, r = _fork(_failed_unlock_loop, vault2.root, "alice", START + trial * 10**6)
        assert os.read(r, 1) == b"s"
        time.sleep(rng.uniform(0.001, 0.03))
        _kill(pid)
        data = b""
        while chunk := os.read(r, 4096):
            data += chunk
        os.close(r)
        answered += data.count(b"f")
        failures = _totp_state(vault2)["failures"]
        assert failures >= history[-1], f"trial {trial}: counter went down {history}"
        assert failures >= answered
        history.append(failures)
    assert history[-1] > 0
    assert verify_log(Store(vault2.root).audit).ok


# -- A5: passphrases ------------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "Crème brûlée à la française, s'il vous plaît")
NFD = unicodedata.normalize("NFD", NFC)
WIDE = "ｆｕｌｌ－ｗｉｄｔｈ ｐａｓｓｐｈｒａｓｅ １２３"
NARROW = "full-width passphrase 123"
LONG = "".join(random.Random(5).choice("abcdefghij klmnop-") for _ in range(1200))


def test_a5_unicode_spellings_unlock(tmp_path: Path) -> None:
    assert NFC != NFD and unicodedata.normalize("NFKC", WIDE) == NARROW
    env = make_vault(tmp_path, operators=3,
                     passphrases={"alice": NFC, "bob": NFD, "carol": WIDE})
    env.clock.advance(STEP)
    for name, typed in (("alice", NFD), ("bob", NFC), ("carol", NARROW)):
        env.vault.unlock(name, typed, env.code(name))
    env.clock.advance(STEP)
    for name, typed in (("alice", NFC), ("bob", NFD), ("carol", WIDE)):
        env.vault.unlock(name, typed, env.code(name))


def test_a5_passphrase_never_truncated(tmp_path: Path) -> None:
    env = make_vault(tmp_path, passphrases={"alice": LONG})
    near = LONG[:-1] + ("x" if LONG[-1] != "x" else "y")
    for i, wrong in enumerate((LONG[:1199], LONG[:1024], LONG[:1000], LONG[:256], LONG[:128],
                               LONG[:72], LONG[:64], near, LONG + " ")):
        env.clock.set(START + (i + 1) * 4000.0)
        assert str(_refused(env, "alice", env.code("alice"), passphrase=wrong)) == AUTH_FAILED
    env.clock.advance(4000)
    env.unlock("alice")


def _flip_b64(text: str, pos: int) -> str:
    raw = bytearray(canonical.b64d(text))
    raw[pos % len(raw)] ^= 0x01
    return canonical.b64e(bytes(raw))


CORRUPTIONS: dict[str, Any] = {
    "ciphertext-bit": lambda d: d.update(wrapped=_flip_b64(d["wrapped"], 40)),
    "nonce-bit": lambda d: d.update(wrapped=_flip_b64(d["wrapped"], 2)),
    "tag-bit": lambda d: d.update(wrapped=_flip_b64(d["wrapped"], -1)),
    "truncated": lambda d: d.update(wrapped=canonical.b64e(canonical.b64d(d["wrapped"])[:-5])),
    "empty": lambda d: d.update(wrapped=""),
    "not-base64": lambda d: d.update(wrapped="%%%not base64%%%"),
    "non-canonical-base64": lambda d: d.update(wrapped=d["wrapped"].rstrip("=") + "\n"),
    "salt-edited": lambda d: d.update(kdf=dict(d["kdf"], salt=canonical.b64e(b"t" * 16))),
    "kdf-cost-edited": lambda d: d.update(kdf=dict(d["kdf"], iterations=2)),
    "kdf-over-ceiling": lambda d: d.update(kdf=dict(d["kdf"], memory_kib=2**40)),
}
#: A swapped public key is no longer an unlock failure: the record disagrees with
#: the signed roster, which every client names as tampering (exit 3).
KEY_SWAPS: dict[str, Any] = {
    "hpke-key-swapped": lambda d: d.update(hpke_pub=canonical.b64e(b"\x09" * 32)),
    "sign-key-swapped": lambda d: d.update(sign_pub=canonical.b64e(b"\x09" * 32)),
}


@pytest.mark.parametrize("swap", sorted(KEY_SWAPS))
def test_a5_swapped_key_is_named_as_tampering(vault2: VaultEnv, swap: str) -> None:
    tamper_state(vault2.root, lambda st: KEY_SWAPS[swap](st["operators"]["alice"]))
    vault2.clock.advance(STEP)
    with pytest.raises(IntegrityError, match=r"alice.*differs from the signed roster"):
        vault2.vault.unlock("alice", vault2.passphrases["alice"], vault2.code("alice"))


def test_a5_wrong_passphrase_and_corrupt_wrap_look_the_same(vault2: VaultEnv) -> None:
    vault2.clock.advance(STEP)
    reference = _refused(vault2, "alice", vault2.code("alice"), passphrase="wrong but long enough")
    messages = {"wrong-passphrase": (type(reference), str(reference), reference.exit_code)}
    original = vault2.operator_doc("alice")
    for name, corrupt in CORRUPTIONS.items():
        def edit(doc: dict[str, Any], corrupt: Any = corrupt) -> None:
            doc.clear()
            doc.update(original)
            corrupt(doc)

        vault2.edit_operator("alice", edit)
        vault2.clock.advance(4000)
        error = _refused(vault2, "alice", vault2.code("alice"))  # the right passphrase
        messages[name] = (type(error), str(error), error.exit_code)
    def restore(doc: dict[str, Any]) -> None:
        doc.clear()
        doc.update(original)

    vault2.edit_operator("alice", restore)
    assert set(messages.values()) == {(AuthError, AUTH_FAILED, 1)}, messages
    vault2.clock.advance(4000)
    vault2.unlock("alice")  # and the intact wrap still opens
