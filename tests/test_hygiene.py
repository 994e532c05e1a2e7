"""Secret hygiene, core part (R2): canary secrets, passphrases and TOTP seeds
never appear in any file of the vault directory or the client state
directory, in audit exports, or in the str/repr/traceback of any error raised
along the way (the CLI and TUI outputs are checked by their own tests)."""

from __future__ import annotations

import base64
import io
import os
import pickle
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from glasskey.core import exports as audit_exports
from glasskey.core.credentials import CredentialSpec
from glasskey.core.crypto import kdf
from glasskey.core.errors import AuthError, GlasskeyError, IntegrityError
from glasskey.core.operators import Enrolment, OperatorSpec
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from helpers import VaultEnv, files_under, make_vault

CRED = "CANARY-credential-secret-7f3a9e51"
PASS = {"alice": "CANARY-passphrase-alice-91b2c", "bob": "CANARY-passphrase-bob-44d1e",
        "carol": "CANARY-passphrase-carol-0a6f2"}
SEED = {"alice": "GLASSKEYCANARYAAGLASSKEYCANARYAA", "bob": "GLASSKEYCANARYBBGLASSKEYCANARYBB",
        "carol": "GLASSKEYCANARYCCGLASSKEYCANARYCC"}
WRONG = "CANARY-wrong-passphrase-5d1c"
SHORT = "CANARYshort"  # too short to be accepted, still a secret
BAD_SEED = "CANARY-not-base32!!"


def _encodings(text: str, *, base32: bool = False) -> dict[str, bytes]:
    raw = text.encode()
    out = {"utf-8": raw, "hex": raw.hex().encode(), "base64": base64.b64encode(raw),
           "utf-16-le": text.encode("utf-16-le")}
    if base32:
        key = base64.b32decode(text)
        out.update({"seed-bytes": key, "seed-hex": key.hex().encode(),
                    "seed-base64": base64.b64encode(key)})
    return out


def _needles(extra: dict[str, str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for label, value in {"credential": CRED, "wrong-passphrase": WRONG, **extra,
                         **{f"passphrase:{n}": p for n, p in PASS.items()}}.items():
        out.update({f"{label}/{k}": v for k, v in _encodings(value).items()})
    for name, seed in SEED.items():
        out.update({f"seed:{name}/{k}": v for k, v in _encodings(seed, base32=True).items()})
    return out


class Errors:
    """Collects every error raised by the steps it runs."""

    def __init__(self) -> None:
        self.caught: list[BaseException] = []

    def expect(self, kind: type[BaseException], step: Callable[[], Any]) -> None:
        try:
            step()
        except kind as exc:
            self.caught.append(exc)
        else:
            raise AssertionError(f"{step} did not raise {kind.__name__}")

    def texts(self) -> Iterator[tuple[str, str]]:
        for exc in self.caught:
            yield f"{type(exc).__name__}", str(exc)
            yield f"{type(exc).__name__} repr", repr(exc)
            yield f"{type(exc).__name__} traceback", "".join(traceback.format_exception(exc))
            for arg in exc.args:
                yield f"{type(exc).__name__} arg", repr(arg)


@pytest.fixture
def world(tmp_path: Path) -> VaultEnv:
    return make_vault(tmp_path, operators=3, passphrases=PASS, seeds=SEED)


def test_r2_canaries_never_leak(world: VaultEnv, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    v = world.vault
    errors = Errors()
    alice, bob = world.unlock("alice"), world.unlock("bob")
    cred = v.add_credential(alice, CredentialSpec("db-root", secret=SecretValue(CRED)))
    v.import_credentials(alice, [CredentialSpec(f"batch-{i}") for i in range(3)])

    # failures along the way, with secrets in the arguments
    errors.expect(AuthError, lambda: v.unlock("carol", WRONG, world.code("carol")))
    errors.expect(AuthError, lambda: v.unlock("carol", PASS["carol"], "000000"))
    world.clock.advance(3700)
    carol = world.unlock("carol")
    errors.expect(AuthError, lambda: v.unlock("carol", PASS["carol"], world.code("carol")))
    errors.expect(GlasskeyError, lambda: v.add_credential(
        alice, CredentialSpec("db-root", secret=SecretValue(CRED))))
    errors.expect(GlasskeyError, lambda: v.add_credential(
        alice, CredentialSpec("bad name!", secret=SecretValue(CRED))))
    errors.expect(GlasskeyError, lambda: kdf.check_passphrase_policy(SHORT))
    errors.expect(GlasskeyError, lambda: v.add_operator(
        [alice, bob], OperatorSpec("dave", ("requester",), WRONG, BAD_SEED)))
    errors.expect(GlasskeyError, lambda: v.add_operator(
        [alice, bob], OperatorSpec("erin", ("requester",), SHORT, None)))

    # a full checkout: the secret is released exactly where it should be
    req = v.request(alice, "db-root", "outage", "INC-1", 1800)
    errors.expect(GlasskeyError, lambda: v.approve(alice, req.id))  # self-approval
    v.approve(bob, req.id)
    assert v.reveal(alice, req.id).reveal() == CRED
    errors.expect(GlasskeyError, lambda: v.reveal(alice, req.id))  # second reveal
    v.checkin(alice, req.id)
    # the rotated value becomes a canary too
    req2 = v.request(alice, "db-root", "follow-up", "INC-2", 600)
    v.approve(carol, req2.id)
    rotated = v.reveal(alice, req2.id).reveal()
    assert rotated != CRED and len(rotated) >= 16
    v.checkin(alice, req2.id)
    assert v.verify_audit().ok

    # audit exports
    exports = []
    for fmt in ("jsonl", "csv"):
        out = io.StringIO()
        assert audit_exports.export(v.audit_lines(), fmt, out) > 10
        exports.append(out.getvalue())

    # a damaged vault: the integrity error must not quote file contents that matter
    state = world.root / "vault.json"
    good = state.read_bytes()
    state.write_bytes(good[:-7])
    errors.expect(IntegrityError, lambda: v.unlock("alice", PASS["alice"], world.code("alice")))
    errors.expect(IntegrityError, lambda: v.operators())
    state.write_bytes(good)

    needles = _needles({"rotated": rotated, "short": SHORT, "bad-seed": BAD_SEED})
    hits: list[str] = []
    files = list(files_under(world.root, Path(os.environ["GLASSKEY_STATE_DIR"])))
    assert any(p.name == "vault.json" for p in files) and any(
        p.parent.name == "checkpoints" for p in files)
    for path in files:
        data = path.read_bytes()
        hits += [f"{path.name}: {label}" for label, needle in needles.items() if needle in data]
    captured = capsys.readouterr()
    texts = [("stdout", captured.out), ("stderr", captured.err),
             *(("export", e) for e in exports), *errors.texts()]
    for where, text in texts:
        blob = text.encode("utf-8", "surrogateescape")
        hits += [f"{where}: {label}" for label, needle in needles.items() if needle in blob]
    assert not hits, hits
    assert len(errors.caught) >= 10
    assert cred.name == "db-root"


def test_r2_value_objects_hide_secrets(world: VaultEnv) -> None:
    session = world.unlock("alice")
    spec = OperatorSpec("alice", ("requester",), PASS["alice"], SEED["alice"])
    cspec = CredentialSpec("x", secret=SecretValue(CRED))
    secret = SecretValue(CRED)
    texts = [repr(spec), str(spec), repr(cspec), str(cspec), repr(session), str(session),
             repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>40}",
             repr([secret]), repr({"s": secret}), repr(Session)]
    blob = "\n".join(texts).encode()
    hits = [label for label, needle in _needles({}).items() if needle in blob]
    assert not hits, hits
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_r2_enrolment_repr_hides_the_seed(tmp_path: Path) -> None:
    env = make_vault(tmp_path, seeds=SEED, passphrases=PASS)
    alice, bob = env.unlock("alice"), env.unlock("bob")
    enrolment = env.vault.add_operator(
        [alice, bob], OperatorSpec("carol", ("approver",), PASS["carol"], SEED["carol"]))
    assert isinstance(enrolment, Enrolment)
    assert enrolment.totp_secret == SEED["carol"]  # shown once, on purpose
    shown = repr(enrolment) + str(enrolment) + repr([enrolment])
    hits = [label for label, needle in _needles({}).items() if needle in shown.encode()]
    assert not hits, hits
