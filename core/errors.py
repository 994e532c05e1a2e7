"""Typed errors with the exit codes of the scripting interface.

Every error message is one sentence a person can act on and never contains a
secret value: callers pass names and ids, never plaintext.
"""

from __future__ import annotations


class GlasskeyError(Exception):
    """Base of every error the CLI and TUI show to a person."""

    exit_code = 1


class PolicyError(GlasskeyError):
    """Refused by policy (role, state, two-person rule, expiry)."""

    exit_code = 1


class ClockSkewError(PolicyError):
    """This client's clock disagrees with the audit chain's times beyond the bound."""


class AuthError(GlasskeyError):
    """Authentication failed (passphrase, TOTP, lockout).

    Deliberately vague about which factor failed when that would help a guesser.
    """

    exit_code = 1


class UsageError(GlasskeyError):
    """The command was malformed (bad arguments, unknown names)."""

    exit_code = 2


class NotFoundError(UsageError):
    """A named operator, credential or request does not exist."""


class IntegrityError(GlasskeyError):
    """Tampering, corruption or a bad signature: the files cannot be trusted."""

    exit_code = 3


class DecryptError(IntegrityError):
    """One opaque error for every "cannot decrypt" (wrong key, flipped bit, wrong AAD).

    Fernet/age style: the caller learns nothing about *why*, so a wrong
    passphrase and a corrupt wrap look the same.
    """


class StorageError(GlasskeyError):
    """The vault could not be written (disk full, I/O error, lock timeout).

    The write did not happen; the files on disk are the ones from before.
    """

    exit_code = 1


class ConnectorError(GlasskeyError):
    """A rotation target refused, failed or could not be reached."""

    exit_code = 1


class InternalError(GlasskeyError):
    """Something that should not happen did (a bug), as opposed to a bad command.

    Its own exit code (4), so a script never mistakes a bug for a refusal (1) or
    for its own usage mistake (2). The message names the exception type only.
    """

    exit_code = 4
