"""The storage surface the services use, declared once.

Services and fronts see only these Protocols: a ``Store`` that opens
``read()`` snapshots and exclusive ``transaction()``\\ s, a ``Transaction``
holding named ``Table``\\ s and the signed audit chain's writer, and an audit
reader addressed by ``AuditCursor`` (sequence number and line hash). How
tables are split into files, where the audit log's lines sit on disk, byte
offsets and manifests are a backend's business: nothing here names them, so
a PostgreSQL backend can implement the same surface and pass the same
contract suite (tests/test_storage_contract.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from glasskey.core.audit import GENESIS, Signer
from glasskey.core.errors import GlasskeyError

if TYPE_CHECKING:
    from glasskey.core.chain import Progress, VerifyResult
    from glasskey.core.roster import Roster

Doc = dict[str, Any]
#: (signer, event, subject, details, seq) of an entry a transaction recorded.
Recorded = tuple[Signer, str, str, dict[str, Any], int]


@dataclass(frozen=True)
class AuditCursor:
    """A position in the audit chain: the entry ``seq`` whose line hashes to ``hash``.

    ``AuditCursor()`` is the position before the first entry. Reading
    "since" a cursor whose entry is no longer the one it names is an
    IntegrityError: the log was rewritten or rolled back.
    """

    seq: int = 0
    hash: str = GENESIS


@dataclass(frozen=True)
class AuditPage:
    """Parsed entries (oldest first) and the cursor after the last of them."""

    entries: list[Doc] = field(default_factory=list)
    cursor: AuditCursor = field(default_factory=AuditCursor)


class Refused(Exception):
    """Raised inside a transaction: commit what was recorded, then raise ``error``.

    A refusal is itself audited (a failed authentication, a denied release):
    the backend commits the transaction's audit records and state, then
    re-raises ``error`` to the caller.
    """

    def __init__(self, error: GlasskeyError) -> None:
        super().__init__(str(error))
        self.error = error


class Table(Protocol):
    """A keyed collection of JSON documents inside a transaction."""

    def get(self, key: str) -> Doc | None: ...

    def put(self, key: str, doc: Doc) -> None: ...

    def delete(self, key: str) -> None: ...

    def values(self) -> Iterable[Doc]: ...

    def items(self) -> Iterable[tuple[str, Doc]]: ...

    def __len__(self) -> int: ...

    def partitions(self) -> int:
        """How many partitions the backend reads this table in (1 if it is not split)."""
        ...

    def partition(self, index: int) -> list[Doc]:
        """The documents of one partition: a reader that wants *some* row (the share
        drill) reads one partition at a time instead of the whole table."""
        ...


class AuditWriter(Protocol):
    """Appending to the signed audit chain inside a write transaction."""

    def entry_time(self, strict: bool = True) -> float:
        """The time the next entry gets (never before the chain's newest entry)."""
        ...

    def newest_entry(self) -> tuple[float, str] | None:
        """(time, actor) of the chain's newest entry, this transaction's included."""
        ...

    def record(self, signer: Signer, event: str, subject: str,
               details: dict[str, Any] | None = None) -> int:
        """Append an entry; durable before the state it describes. Returns its seq."""
        ...

    def record_change(self, signer: Signer, event: str, subject: str,
                      details: dict[str, Any], roster: Roster) -> int:
        """Record a signed roster change and adopt the roster after it."""
        ...


class Transaction(AuditWriter, Protocol):
    """One consistent view of the state; writable only inside ``Store.transaction()``."""

    #: True inside ``Store.transaction()``; a ``read()`` snapshot refuses writes.
    write: bool
    #: The signed roster as verified up to the audit head (core/chain.py).
    roster: Roster
    #: Every entry recorded so far (what the after-commit hooks read).
    recorded: list[Recorded]

    def table(self, name: str) -> Table: ...

    @property
    def meta(self) -> Doc: ...

    def set_meta(self, doc: Doc) -> None: ...

    @property
    def audit_head(self) -> AuditCursor:
        """The newest entry of the chain, this transaction's own included."""
        ...


class AuditReader(Protocol):
    """Reading the audit log without knowing how it is stored."""

    def audit_head(self) -> AuditCursor:
        """The newest committed entry, read without verification (cheap)."""
        ...

    def audit_tail(self, count: int) -> AuditPage:
        """The last ``count`` complete entries."""
        ...

    def audit_since(self, cursor: AuditCursor) -> AuditPage:
        """Every complete entry after ``cursor`` (IntegrityError if it was rewritten)."""
        ...

    def audit_lines(self, since: AuditCursor | None = None) -> Iterator[bytes]:
        """Raw canonical lines (no newline) after ``since``, streamed: exports and
        reports read a million lines without holding them."""
        ...

    def audit_batches(self) -> Iterator[list[bytes]]:
        """The whole log's raw lines in batches (a few MiB each): the fast path of
        the one-day report, which splits and filters bytes before parsing."""
        ...

    def verify_audit(self, *, incremental: bool = False,
                     progress: Progress | None = None) -> VerifyResult:
        """Every link and signature of the chain (incremental: from this client's
        checkpoint); a verified head is remembered as this client's witness."""
        ...


class Store(AuditReader, Protocol):
    """A vault's state: snapshots, serial read-modify-write transactions, the audit log."""

    #: The vault's local directory (site config, client pins live beside it).
    root: Path
    #: The clock entries are stamped with.
    now: Callable[[], float]
    #: Called with each committed write transaction once no lock is held; never
    #: raises into the caller (notifications are delivered there).
    on_unlock: Callable[[Transaction], None] | None
    #: Called with each write transaction that recorded entries, just before it
    #: commits (deliveries are queued in the same commit).
    before_commit: Callable[[Transaction], None] | None

    def exists(self) -> bool: ...

    def create(self, meta: Doc) -> None: ...

    def read(self) -> AbstractContextManager[Transaction]: ...

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def seq(self) -> int:
        """A counter that changes exactly when a transaction commits (cheap to poll)."""
        ...

    def unverified_meta(self) -> Doc:
        """The vault metadata as stored, without witness check or chain verification:
        for describing a vault that fails them."""
        ...

    def table_version(self, name: str) -> str:
        """An opaque token that changes exactly when ``name``'s contents change."""
        ...

    def twin(self) -> Store:
        """Another handle on the same vault, with its own lock handle (a delivery
        thread waits for the vault like another process would)."""
        ...


class RefusalHeld:
    """Around a transaction's body in every backend: a ``Refused`` raised there is
    held while the transaction commits its audit records, then ``reraise`` raises
    the error it carries (a refusal is itself audited)."""

    def __init__(self) -> None:
        self.refused: Refused | None = None

    def __enter__(self) -> RefusalHeld:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> bool:
        if isinstance(exc, Refused):
            self.refused = exc
            return True
        return False

    def reraise(self) -> None:
        if self.refused is not None:
            raise self.refused.error from None


def run_before_commit(hook: Callable[[Transaction], None] | None, txn: Transaction) -> None:
    """Every backend calls the store's ``before_commit`` hook this way: only for a
    transaction that recorded entries, and never letting it block the commit
    (notifications queue their deliveries there; a failure is retried later)."""
    if hook is not None and txn.recorded:
        try:
            hook(txn)
        except Exception:  # noqa: S110 - notifications never block a commit
            pass


__all__ = ["AuditCursor", "AuditPage", "AuditReader", "AuditWriter", "Doc", "Recorded",
           "RefusalHeld", "Refused", "Store", "Table", "Transaction", "run_before_commit"]
