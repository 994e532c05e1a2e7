"""Site settings beside the vault (``glasskey.toml``): never a secret value in it.

Connector admin connections name the site's own mechanisms (a pg_service
entry, a file holding an LDAP bind password that the site protects), policy
defaults and the notification hook. Secrets stay where the site keeps them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from core.errors import UsageError

CONFIG_FILE = "glasskey.toml"
FORBIDDEN_KEYS = ("password", "secret", "token", "passphrase")


def load(root: Path) -> dict[str, Any]:
    path = root / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{CONFIG_FILE} is not valid TOML: {exc}") from None
    _refuse_secrets(data, "")
    return data


def _refuse_secrets(node: Any, where: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else key
            if any(word == key.lower() or key.lower().endswith("_" + word)
                   for word in FORBIDDEN_KEYS):
                raise UsageError(
                    f"{CONFIG_FILE} holds a secret at {path}; keep secrets in the site's own "
                    "files (pgpass, a protected password file) and name the file instead")
            _refuse_secrets(value, path)


def connector_section(config: dict[str, Any], name: str) -> dict[str, str]:
    section = config.get("connectors", {}).get(name, {})
    return {str(k): str(v) for k, v in section.items()} if isinstance(section, dict) else {}
