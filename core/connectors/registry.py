"""Connector discovery through the ``glasskey.connectors`` entry-point group.

Sites add their own connectors by publishing an entry point in that group; the
built-in ones are registered the same way in glasskey's pyproject.toml, with a
fallback table for running from a source tree that was never installed.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points

from glasskey.core.connectors.base import Connector, ConnectorSettings
from glasskey.core.errors import UsageError

GROUP = "glasskey.connectors"

_BUILTIN = {
    "generated": "glasskey.core.connectors.generated:GeneratedConnector",
    "manual": "glasskey.core.connectors.manual:ManualConnector",
    "command": "glasskey.core.connectors.command:CommandConnector",
    "postgres": "glasskey.core.connectors.postgres:PostgresConnector",
    "ldap": "glasskey.core.connectors.ldap:LdapConnector",
}


def available() -> list[str]:
    names = set(_BUILTIN)
    names.update(ep.name for ep in entry_points(group=GROUP))
    return sorted(names)


@functools.lru_cache(maxsize=64)
def load(name: str) -> type[Connector]:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            break
    else:
        if name not in _BUILTIN:
            raise UsageError(
                f"unknown connector {name!r}; available: {', '.join(available())}"
            )
        module, _, attr = _BUILTIN[name].partition(":")
        cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise UsageError(f"connector {name!r} does not implement the Connector interface")
    return cls


def make(name: str, settings: ConnectorSettings) -> Connector:
    return load(name)(settings)


def check(name: str, target: str | None, options: Mapping[str, str]) -> None:
    """Refuse an unknown connector or bad settings when a credential is added
    (UsageError, one sentence), not at its first rotation."""
    load(name).check_settings(target, options)
