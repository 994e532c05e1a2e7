"""The contract every rotation connector must meet, as checks its author runs.

Why this ships in the package: the vault's safety rests on promises a type
checker cannot see. Rotation (core/rotation.py) seals the pending value before
the target is touched, then calls ``verify(new)`` (a lost reply may already
have applied it), ``set(old, new)``, ``verify(new)`` and ``verify_rejected(old)``
— and may call them all again after a crash between ``set`` and the commit.
A connector that reports ``False`` for an unreachable target, changes nothing
on ``set``, fails a retried ``set`` or waits forever breaks that protocol. The
built-in postgres, ldap and command connectors pass these checks against real
servers (tests/test_connector_contract.py); a site's own connector should pass
them against a real (test) instance of its target, as age ships a testkit.

No pytest import: a failed check raises ``ContractViolation`` (an
``AssertionError``), so any test runner reports it. Its message names the step,
never a value. With pytest::

    from glasskey.core.connectors.testing import CHECKS, ConnectorContract, LiveAccount

    def account(initial: SecretValue) -> LiveAccount:
        user = create_test_user(initial.reveal())   # your target, your way
        return LiveAccount(MyConnector(ConnectorSettings("my-cred", target=user.url)),
                           accepts=lambda value: real_login(user, value))

    contract = ConnectorContract(
        account,
        unreachable=lambda: MyConnector(ConnectorSettings("c", target=f"...:{closed_port()}")),
        hung=lambda timeout: MyConnector(ConnectorSettings(
            "c", target=f"...:{silent_port}", options={"timeout": f"{timeout:g}"})))

    @pytest.mark.parametrize("check", CHECKS)
    def test_my_connector_meets_the_contract(check: str) -> None:
        contract.run(check)

or ``check_connector(account, unreachable=..., hung=...)`` to run them all.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass

from glasskey.core.connectors.base import Connector, scrub_fragments
from glasskey.core.errors import ConnectorError, UsageError
from glasskey.core.secret import SecretValue

#: Timeout values every connector must refuse when its settings are checked.
BAD_TIMEOUTS = ("inf", "nan", "1e7", "-1", "0", "soon")


class ContractViolation(AssertionError):
    """A connector broke the contract; the message names the step, never a value."""


@dataclass(frozen=True)
class LiveAccount:
    """A fresh account on a live target and a connector bound to it.

    ``accepts`` is an independent login (not through the connector), so that
    "the target accepts the new value" does not rest on the connector's own
    word; None when the author has no other way in.
    """

    connector: Connector
    accepts: Callable[[SecretValue], bool] | None = None


#: Makes a fresh account whose value is the argument (each check uses its own).
AccountFactory = Callable[[SecretValue], LiveAccount]


def random_value() -> SecretValue:
    """A password no target has seen: 26 URL-safe characters."""
    return SecretValue("Ct" + secrets.token_urlsafe(18))


def closed_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on (it was free a moment ago): "unreachable"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def silent_listener(host: str = "127.0.0.1") -> Iterator[int]:
    """A TCP port that completes the handshake and never answers: a hung
    target, which only the connector's own deadline can end. Yields the port.

    The kernel accepts connections into the listen backlog without the
    program calling ``accept``, so no thread is needed.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        s.listen(64)
        yield int(s.getsockname()[1])


def _fail(step: str) -> ContractViolation:
    return ContractViolation(step)


def _leaks(text: str, values: tuple[SecretValue, ...]) -> bool:
    """True when ``text`` holds a 4-character fragment of a value (what the
    guard in base.py scrubs; a message the scrubber would change has leaked)."""
    return scrub_fragments(text, values) != text


def _expect_failure(step: str, call: Callable[[], object],
                    values: tuple[SecretValue, ...]) -> ConnectorError:
    """``call`` must raise ConnectorError with a clean, unchained message."""
    try:
        result = call()
    except ConnectorError as exc:
        if _leaks(str(exc), values):
            raise _fail(f"{step}: the ConnectorError message quotes a value") from None
        if exc.__cause__ is not None or exc.__context__ is not None:
            # A chained library exception may hold the value (psycopg keeps the
            # failed connection, password included).
            raise _fail(f"{step}: the ConnectorError carries a chained exception") from None
        return exc
    except Exception as exc:
        raise _fail(f"{step}: raised {type(exc).__name__}, not ConnectorError") from None
    raise _fail(f"{step}: returned {type(result).__name__} instead of raising ConnectorError "
                "(unknown is not the same as rejected)")


def _within(limit: float, call: Callable[[], object]) -> float | None:
    """Run ``call`` in a daemon thread; the seconds it took, or None when it
    is still running after ``limit`` (a hung connector must fail the check,
    not hang the test run). Its exception, if any, is raised here."""
    outcome: list[BaseException | float] = []

    def target() -> None:
        started = time.monotonic()
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
            return
        outcome.append(time.monotonic() - started)

    thread = threading.Thread(target=target, name="connector-contract", daemon=True)
    thread.start()
    thread.join(limit)
    if not outcome:
        return None
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


@dataclass(frozen=True)
class ConnectorContract:
    """The checks, each a method ``check_<name>``; ``run(name)`` runs one.

    ``account`` makes a fresh live account per check; ``unreachable()`` a
    connector whose target refuses connections; ``hung(timeout)`` one whose
    target accepts connections and never answers, with its ``timeout`` option
    set to ``timeout`` seconds. ``slack`` is how far past its timeout an
    operation may end (libpq waits at least 2 s to connect; a loaded test
    machine adds more). ``new_value`` makes values the target's policy allows.
    """

    account: AccountFactory
    _: KW_ONLY
    unreachable: Callable[[], Connector]
    hung: Callable[[float], Connector]
    timeout: float = 1.0
    slack: float = 5.0
    new_value: Callable[[], SecretValue] = random_value

    def run(self, name: str) -> None:
        """Run the check ``name`` (one of ``CHECKS``)."""
        if name not in CHECKS:
            raise ValueError(f"no contract check named {name!r}; see CHECKS")
        getattr(self, f"check_{name}")()

    # ----------------------------------------------------------------- helpers

    def _fresh(self) -> tuple[LiveAccount, SecretValue]:
        initial = self.new_value()
        return self.account(initial), initial

    @staticmethod
    def _accepted(step: str, live: LiveAccount, value: SecretValue, expected: bool) -> None:
        """Both the connector's verify and the independent login agree."""
        if live.connector.verify(value) is not expected:
            raise _fail(f"{step}: verify did not return {expected}")
        if live.accepts is not None and live.accepts(value) is not expected:
            raise _fail(f"{step}: the independent login did not return {expected}")

    # ----------------------------------------------------------------- checks

    def check_guarded(self) -> None:
        """A real ``Connector`` subclass with a name, whose operations pass
        through the guard that scrubs values out of every error (base.py)."""
        live, _ = self._fresh()
        cls = type(live.connector)
        if not isinstance(live.connector, Connector):
            raise _fail("the connector is not a glasskey Connector")
        if not cls.name:
            raise _fail("the connector class sets no name")
        if cls.vault_is_source_of_truth or cls.needs_person:
            raise _fail("the contract is for connectors that change a live target")
        for method in ("set", "verify", "verify_rejected"):
            found = getattr(cls, method)
            if found is getattr(Connector, method):
                continue  # the base's default, built on the guarded verify
            if not getattr(found, "__glasskey_guarded__", False):
                raise _fail(f"{method} bypasses the guard of Connector.__init_subclass__")

    def check_rotation(self) -> None:
        """The rotation sequence: the pending value is not yet accepted, ``set``
        makes it the value, the old one stops working, and a second rotation
        from the new value works too."""
        live, old = self._fresh()
        self._accepted("before any change, the initial value", live, old, True)
        new = self.new_value()
        self._accepted("before set, the pending value", live, new, False)
        live.connector.set(old, new)
        self._accepted("after set, the new value", live, new, True)
        self._accepted("after set, the old value", live, old, False)
        if live.connector.verify_rejected(old) is not True:
            raise _fail("after set, verify_rejected(old) is not True")
        newer = self.new_value()
        live.connector.set(new, newer)
        self._accepted("after a second set, the newest value", live, newer, True)
        for step, value in (("the first", old), ("the second", new)):
            self._accepted(f"after a second set, {step} value", live, value, False)

    def check_retry_after_lost_reply(self) -> None:
        """``set`` again after it went through (a crash between set and the
        vault's commit, or a lost reply): it succeeds and changes nothing, also
        when the vault already believes the new value is current."""
        live, old = self._fresh()
        new = self.new_value()
        live.connector.set(old, new)
        try:
            live.connector.set(old, new)
        except ConnectorError:
            raise _fail("a retried set(old, new) failed after the first went through") from None
        self._accepted("after the retried set, the new value", live, new, True)
        if live.connector.verify_rejected(old) is not True:
            raise _fail("after the retried set, verify_rejected(old) is not True")
        try:
            live.connector.set(new, new)
        except ConnectorError:
            raise _fail("set(new, new) failed once the target had the new value") from None
        self._accepted("after set(new, new), the new value", live, new, True)

    def check_verify_probe(self) -> None:
        """``verify`` answers a bool and changes nothing: True for the value,
        False for another one (and ``verify_rejected`` the inverse)."""
        live, value = self._fresh()
        wrong = self.new_value()
        for _ in range(2):
            if live.connector.verify(value) is not True:
                raise _fail("verify(current value) is not True")
            if live.connector.verify(wrong) is not False:
                raise _fail("verify(another value) is not False")
        if live.connector.verify_rejected(wrong) is not True:
            raise _fail("verify_rejected(another value) is not True")
        if live.connector.verify_rejected(value) is not False:
            raise _fail("verify_rejected(current value) is not False")
        self._accepted("after probing, the value", live, value, True)

    def check_refused_change_leaves_the_target(self) -> None:
        """``set`` with a stale current value either works (an admin path that
        needs none) or fails with a clean ConnectorError and the target
        still has its value."""
        live, old = self._fresh()
        stale, new = self.new_value(), self.new_value()
        try:
            live.connector.set(stale, new)
        except ConnectorError as exc:
            if _leaks(str(exc), (old, stale, new)):
                raise _fail("a refused set: the ConnectorError message quotes a value") from None
            if exc.__context__ is not None or exc.__cause__ is not None:
                raise _fail("a refused set: the ConnectorError carries a chained exception"
                            ) from None
            self._accepted("after a refused set, the old value", live, old, True)
            self._accepted("after a refused set, the new value", live, new, False)
            return
        self._accepted("after set with a stale current value, the new value", live, new, True)

    def check_unreachable(self) -> None:
        """A target that cannot be reached is a ConnectorError from every
        operation — never False (rejected) or True — with no value in it."""
        connector = self.unreachable()
        old, new = self.new_value(), self.new_value()
        _expect_failure("verify on an unreachable target", lambda: connector.verify(old),
                        (old,))
        _expect_failure("verify_rejected on an unreachable target",
                        lambda: connector.verify_rejected(old), (old,))
        _expect_failure("set on an unreachable target", lambda: connector.set(old, new),
                        (old, new))

    def check_deadline(self) -> None:
        """A target that never answers cannot hold an operation past its
        ``timeout`` option (plus slack); a timeout the connector cannot honour
        (infinite, huge, not a number) is refused when the settings are set."""
        connector = self.hung(self.timeout)
        old, new = self.new_value(), self.new_value()
        limit = self.timeout + self.slack
        for step, call in (("verify", lambda: connector.verify(old)),
                           ("set", lambda: connector.set(old, new))):
            what = f"{step} on a target that never answers"
            took = _within(limit, functools.partial(_expect_failure, what, call, (old, new)))
            if took is None:
                raise _fail(f"{what} was still running {limit:g} s into a "
                            f"{self.timeout:g} s timeout")
        settings = connector.settings
        try:
            type(connector).check_settings(settings.target, settings.options)
        except UsageError:
            raise _fail("check_settings refuses the hung target's own settings") from None
        for bad in BAD_TIMEOUTS:
            try:
                type(connector).check_settings(settings.target,
                                               {**settings.options, "timeout": bad})
            except UsageError:
                continue
            raise _fail(f"check_settings accepts the timeout {bad!r}")

    def check_describe(self) -> None:
        """``describe`` is one line with no value in it, before and after a set."""
        live, old = self._fresh()
        new = self.new_value()
        before = live.connector.describe()
        live.connector.set(old, new)
        for text in (before, live.connector.describe()):
            if "\n" in text or not text.strip():
                raise _fail("describe() is not one non-empty line")
            if _leaks(text, (old, new)):
                raise _fail("describe() quotes a value")


#: The checks in the order ``check_connector`` runs them.
CHECKS: tuple[str, ...] = (
    "guarded", "verify_probe", "rotation", "retry_after_lost_reply",
    "refused_change_leaves_the_target", "unreachable", "deadline", "describe",
)


def check_connector(account: AccountFactory, *, unreachable: Callable[[], Connector],
                    hung: Callable[[float], Connector], timeout: float = 1.0,
                    slack: float = 5.0,
                    new_value: Callable[[], SecretValue] = random_value) -> None:
    """Run every check in order; the first failure raises ContractViolation."""
    contract = ConnectorContract(account, unreachable=unreachable, hung=hung,
                                 timeout=timeout, slack=slack, new_value=new_value)
    for name in CHECKS:
        contract.run(name)
