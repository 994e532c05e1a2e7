"""The vault as composed services: the facade keeps its surface, the fronts get typed
alerts and one import module, randomness is injected, and core reads no environment."""

from __future__ import annotations

import ast
import hashlib
import inspect
from pathlib import Path

import glasskey.core.api as api
from glasskey.core.crypto import hpke, sign
from glasskey.core.models import Alert, AlertKind, CheckoutKind, Policy
from glasskey.core.passwords import generate
from glasskey.core.vault import Vault
from helpers import VaultEnv

REPO = Path(__file__).resolve().parent.parent

#: Every public name of the Vault before it became a facade (the fronts, the
#: benchmarks and the tests call them).
FACADE = [
    "activate_onboarding", "active_kit", "active_map", "add_credential", "add_operator",
    "alerts", "approve", "attach_notifications", "audit_path", "burn_kit", "can_rotate_for",
    "cancel", "change_passphrase", "checkin", "checkout", "checkouts", "clear_requests",
    "confirm_applied", "confirm_totp", "connector_for", "cred_id_for", "credential",
    "credentials", "deny", "drill", "due_at", "emergency_reveal", "expire_onboarding",
    "extend_lease", "flagged", "import_credentials", "initialise", "issue_kit",
    "issue_onboarding", "kdf_target_seconds", "kit_drill", "kit_exposure", "kit_part",
    "kit_sweep", "meta", "new_id", "notify_alerts", "notify_settings", "notify_sweep",
    "notify_test", "now", "onboarding_secrets", "operators", "pending_rotations",
    "queued_notifications", "reactivate_operator", "reconcile", "redisplay", "remove_operator",
    "request", "reset_totp", "reveal", "reveal_apply", "review", "review_queue",
    "revoke_onboarding_manually", "rotate", "rotate_many", "seq", "site_config",
    "site_setting", "suspend_operator", "sweep", "sweep_failures", "table_version", "unlock",
    "vault_id", "verify_audit", "wait_notifications", "root", "store", "clock", "rng",
]


class CountingRandom:
    def __init__(self, seed: bytes) -> None:
        self.seed, self.n = seed, 0

    def bytes(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.n += 1
            out += hashlib.sha256(self.seed + self.n.to_bytes(8, "big")).digest()
        return out[:n]


def test_the_facade_keeps_every_public_name() -> None:
    missing = [name for name in FACADE if not hasattr(Vault, name)
               and name not in ("root", "store", "clock", "rng")]
    assert missing == []
    assert Vault.__mro__ == (Vault, object)  # composed, not inherited


def test_alerts_are_typed_and_read_as_their_sentence(vault2: VaultEnv) -> None:
    alerts = vault2.vault.alerts()
    assert [a.kind for a in alerts] == [AlertKind.NO_KIT]
    alert = alerts[0]
    assert isinstance(alert, Alert)
    assert str(alert) == alert.message == "no emergency kit is issued ('glasskey kit issue')"
    assert alert.credential is None and alert.request_id is None


def test_an_overdue_lease_names_its_credential_and_request(vault2: VaultEnv) -> None:
    from glasskey.core.credentials import CredentialSpec

    alice = vault2.unlock("alice")
    vault2.vault.add_credential(alice, CredentialSpec("db"))
    co = vault2.vault.request(alice, "db", "an outage", "INC-1", 600)
    vault2.vault.approve(vault2.unlock("bob"), co.id)
    vault2.vault.reveal(alice, co.id)
    vault2.clock.advance(co.duration + 60)
    overdue = [a for a in vault2.vault.alerts() if a.kind == AlertKind.OVERDUE]
    assert [(a.credential, a.request_id) for a in overdue] == [("db", co.id)]
    assert vault2.vault.checkout(co.id).kind == CheckoutKind.CHECKOUT


def test_passwords_and_keys_come_from_the_injected_randomness() -> None:
    policy = Policy()
    one = generate(policy, CountingRandom(b"a")).reveal()
    assert one == generate(policy, CountingRandom(b"a")).reveal()
    assert one != generate(policy, CountingRandom(b"b")).reveal()
    assert len(one) == policy.length
    for module in (hpke, sign):
        key = module.generate_private(CountingRandom(b"k"))
        assert key == module.generate_private(CountingRandom(b"k"))
        assert len(module.public_from_private(key)) == 32
        assert module.generate_private() != module.generate_private()


def test_core_reads_no_glasskey_switch_from_the_environment() -> None:
    """The fronts read the environment (tui/environment.py) and pass values in."""
    readers = {}
    for path in sorted((REPO / "core").rglob("*.py")):
        text = path.read_text()
        if "os.environ" in text or "getenv" in text:
            readers[str(path.relative_to(REPO))] = sorted(
                {w for w in ("GLASSKEY_INSECURE_FAST_KDF", "GLASSKEY_TEST_CLOCK_OFFSET",
                             "GLASSKEY_VAULT", "GLASSKEY_STATE_DIR") if w in text})
    assert all(not names for p, names in readers.items() if p != "core/witness.py"), readers
    # witness.state_dir(None) still falls back to GLASSKEY_STATE_DIR for callers that pass
    # no state directory (the fronts always pass one).
    assert readers.get("core/witness.py") == ["GLASSKEY_STATE_DIR"]


def test_the_api_module_offers_everything_the_fronts_import_from_core() -> None:
    wanted: set[str] = set()
    for path in (REPO / "tui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.startswith("glasskey.core"):
                wanted.update(a.name for a in node.names)
    missing = sorted(n for n in wanted if not hasattr(api, n))
    assert missing == [], missing
    assert inspect.ismodule(api.report) and inspect.ismodule(api.siem)
