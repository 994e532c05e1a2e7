"""What the command line reads from a person or a file: passphrases, TOTP codes, names,
secret values.

A secret is never taken from argv (any local user can read /proc/PID/cmdline): it comes
from a file, from stdin (``-``), or from a prompt when a terminal is attached. Without a
terminal a missing factor is a usage error naming the option that supplies it.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

from glasskey.core.api import SecretValue, UsageError


def interactive() -> bool:
    """A person at a terminal can answer prompts (stdin and stderr both a tty)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def ask(prompt: str) -> str:
    """One line typed by the person, prompted on stderr (stdout stays for data)."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def ask_hidden(prompt: str) -> str:
    """A line typed without echo: passphrases, kit parts."""
    return getpass.getpass(prompt, stream=sys.stderr)


def _chomp(data: str) -> str:
    return data[:-1] if data.endswith("\n") else data


def read_passphrase(path: str | None, prompt: str) -> str:
    """From ``path`` (``-``: the first line of stdin), else prompted on a terminal."""
    if path == "-":
        return _chomp(sys.stdin.readline())
    if path:
        try:
            data = Path(path).read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the passphrase file: {exc.strerror}") from None
        return _chomp(data)
    if interactive():
        return ask_hidden(prompt)
    raise UsageError("no passphrase given: use --passphrase-file PATH (or - for stdin)")


def read_new_passphrase(path: str | None, prompt: str) -> str:
    """A new passphrase; typed at a prompt, it is asked twice so a typo does not lock out."""
    new = read_passphrase(path, prompt)
    if path is None and interactive() and ask_hidden("Once more: ") != new:
        raise UsageError("the two new passphrases differ; nothing was changed")
    return new


def read_totp(code: str | None, who: str) -> str:
    if code:
        return code
    if interactive():
        return ask(f"TOTP code for {who}: ")
    raise UsageError("no TOTP code given: use --totp CODE")


def read_name(name: str | None) -> str:
    if name:
        return name
    if interactive():
        return ask("Operator: ")
    raise UsageError("say who is acting with --as NAME")


def read_code_file(path: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the kit part file: {exc.strerror}") from None


def read_secret_text(path: str, what: str) -> str:
    """One line of secret text from a file or stdin ('-'): never from argv, which any
    local user can read in /proc/PID/cmdline."""
    try:
        data = sys.stdin.readline() if path == "-" else Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the {what} file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the {what} file is not UTF-8 text") from None
    return data.strip()


def read_secret_file(path: str) -> SecretValue:
    """A whole secret value from a file or stdin ('-'), less one trailing newline."""
    try:
        data = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the secret file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError("the secret file is not UTF-8 text") from None
    return SecretValue(_chomp(data))


def read_json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"the {what} {path} is not valid JSON") from None
