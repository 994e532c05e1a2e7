"""A vault call off the UI thread, answered by a typed message: ``Done[T]`` or ``Failed``.

Unlocking (Argon2id), a rotation on a remote target or re-splitting every data
key takes long enough to freeze the screen, so it runs in a thread worker.
``run_vault_call`` catches every exception there: a ``GlasskeyError`` becomes
its one sentence, anything else a generic sentence naming only the exception's
type (its text could carry a value), so no traceback and no secret reaches the
screen and no worker error closes the app. The answer is posted to the widget
or screen that asked; one that has closed meanwhile hears nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from glasskey.core.api import GlasskeyError
from textual.dom import DOMNode
from textual.message import Message
from textual.worker import Worker

T = TypeVar("T")


def failure_sentence(exc: Exception) -> str:
    """What the screen says about a failed call."""
    if isinstance(exc, GlasskeyError):
        return str(exc)
    return f"Internal error ({type(exc).__name__}); nothing was changed."


class Done(Message, Generic[T], bubble=False, namespace="vault_call"):
    """The call named ``job`` returned ``result``."""

    def __init__(self, job: str, result: T) -> None:
        super().__init__()
        self.job = job
        self.result = result


class Failed(Message, bubble=False, namespace="vault_call"):
    """The call named ``job`` raised; ``sentence`` is what may be shown."""

    def __init__(self, job: str, sentence: str) -> None:
        super().__init__()
        self.job = job
        self.sentence = sentence


def run_vault_call(node: DOMNode, job: str, call: Callable[[], T]) -> Worker[None]:
    """Run ``call()`` in a thread worker; post ``Done(job, result)`` or ``Failed`` to ``node``.

    One call per ``job`` at a time (an exclusive worker group). The worker lets go of
    ``call`` as soon as it returns: a closure over a recovery code or a second
    operator's session is not kept alive by the finished worker.
    """
    pending = [call]

    def work() -> None:
        fn = pending.pop()
        try:
            answer: Message = Done(job, fn())
        except Exception as exc:  # every failure becomes a sentence, never a traceback
            answer = Failed(job, failure_sentence(exc))
        finally:
            del fn
        node.post_message(answer)

    return node.run_worker(work, name=job, group=job, exclusive=True, thread=True)
