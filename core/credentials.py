"""Credentials: adding and importing values, each version under its own sealed DEK."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from glasskey.core.connectors import registry
from glasskey.core.context import Service
from glasskey.core.envelope import seal_version
from glasskey.core.errors import PolicyError, UsageError
from glasskey.core.lookups import recipients, require_active, seal
from glasskey.core.models import KINDS, Credential, Policy, check_name
from glasskey.core.passwords import alphabet_for, generate
from glasskey.core.roster import config_digest, sign_config
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.storage.interface import Transaction


@dataclass(frozen=True, repr=False)
class CredentialSpec:
    name: str
    kind: str = "break-glass"
    connector: str = "generated"
    secret: SecretValue | None = None
    target: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    #: An onboarding secret issued from a site template (core/config.py): the
    #: site policy, outside the vault, is then what vouches for the target.
    template: str | None = None

    def __repr__(self) -> str:
        return f"CredentialSpec({self.name!r}, {self.kind}, {self.connector})"


class CredentialService(Service):
    """Adding and importing credentials, and reading them."""

    def credentials(self) -> list[Credential]:
        with self.store.read() as txn:
            docs = list(txn.table("credentials").values())
        return sorted((Credential.from_doc(d) for d in docs), key=lambda c: c.name)

    def credential(self, name: str) -> Credential:
        with self.store.read() as txn:
            return Credential.from_doc(self.find_credential(txn, name))

    def check_spec(self, spec: CredentialSpec, operators: int) -> None:
        check_name(spec.name, "credential")
        if spec.kind not in KINDS:
            raise UsageError(f"kind must be one of {', '.join(KINDS)}")
        registry.check(spec.connector, spec.target, spec.options)
        if spec.policy.k not in (2, 3):
            raise UsageError("a credential's threshold k must be 2 or 3")
        if spec.policy.k > operators:
            raise PolicyError(
                f"threshold {spec.policy.k} needs at least {spec.policy.k} operators; "
                f"the vault has {operators}")
        alphabet_for(spec.policy)
        if spec.secret is not None and len(spec.secret) == 0:
            raise UsageError(f"the secret given for {spec.name} is empty")

    def add(self, txn: Transaction, session: Session, spec: CredentialSpec) -> Credential:
        cred_id = self.ctx.cred_id_for(spec.name)
        if txn.table("credentials").get(cred_id) is not None:
            raise UsageError(f"a credential named {spec.name!r} already exists")
        value = spec.secret if spec.secret is not None else generate(spec.policy, self.ctx.rng)
        now = self.now()
        version = seal(txn, session, cred_id, seal_version(
            self.vault_id, cred_id, 1, value, spec.policy.k, recipients(txn), self.ctx.rng,
            now))
        doc: dict[str, Any] = {
            "id": cred_id, "name": spec.name, "kind": spec.kind, "connector": spec.connector,
            "target": spec.target, "options": dict(spec.options),
            "policy": spec.policy.to_doc(), "version": 1, "status": "active",
            "created": now, "rotated_at": now, "rotations": 0,
            "created_by": session.name, "source": "given" if spec.secret else "generated",
        }
        if spec.template is not None:
            doc["template"] = spec.template
        # Where values go and who must agree: believed only under an admin's signature.
        doc["config_sig"] = sign_config(self.vault_id, doc, session.name, session.sign_priv)
        txn.table("credentials").put(cred_id, doc)
        txn.table("sealed").put(cred_id, {"cred_id": cred_id, "current": version,
                                            "pending": None})
        txn.record(session.signer, "credential.added", spec.name, {
            "id": cred_id, "kind": spec.kind, "connector": spec.connector,
            "target": spec.target, "k": spec.policy.k, "version": 1,
            "source": doc["source"], "config": config_digest(self.vault_id, doc),
        })
        return Credential.from_doc(doc)

    def add_credential(self, session: Session, spec: CredentialSpec) -> Credential:
        with self.store.transaction() as txn:
            require_active(txn, session, "admin")
            self.check_spec(spec, len(recipients(txn)))
            return self.add(txn, session, spec)

    def import_credentials(self, session: Session, specs: Iterable[CredentialSpec],
                           progress: Callable[[int, int], None] | None = None
                           ) -> list[Credential]:
        """Many credentials, one authentication, one transaction (all or nothing)."""
        items = list(specs)
        names = [s.name for s in items]
        dupes = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(
            names) else []
        if dupes:
            raise UsageError(f"the import names {dupes[0]!r} more than once")
        out = []
        with self.store.transaction() as txn:
            require_active(txn, session, "admin")
            n_ops = len(recipients(txn))
            for spec in items:
                self.check_spec(spec, n_ops)
            for i, spec in enumerate(items, 1):
                out.append(self.add(txn, session, spec))
                if progress:
                    progress(i, len(items))
        return out
