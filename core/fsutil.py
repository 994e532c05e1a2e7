"""Durable, private file operations.

Every file glasskey writes goes through ``atomic_write``: a temp file in the
same directory opened O_EXCL|O_NOFOLLOW with mode 0600, fsync, rename over the
target, fsync of the directory. A crash leaves either the old or the new file,
never a mix, and a failed fsync is raised, never retried and trusted (the
PostgreSQL "fsyncgate" lesson: after a failed fsync the page cache state is
unknown).

``VaultLock`` is an exclusive ``flock`` on a permanent lock file. The lock file
is never unlinked (unlinking a lock file lets two processes hold "the" lock on
different inodes), is opened with O_NOFOLLOW so a symlink planted at its path
is refused, and a timeout is an error, never an unlocked write.

Whoever holds the lock writes a small side file, ``<lock>.holder``, with its
pid, the operator and the command (names only, set by the front end through
``set_lock_identity``; never arguments, which can hold secrets), and empties
it on release. A process that times out waiting names the holder, and says
when that process is stopped (SIGSTOP, a suspended terminal), so a stuck
holder can be found and dealt with instead of "try again" forever.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import unicodedata
from pathlib import Path
from types import TracebackType

from glasskey.core.errors import StorageError

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.is_symlink():
        raise StorageError(f"{path} is a symlink; refusing to use it as a vault directory")
    os.chmod(path, DIR_MODE)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (renames, new files); StorageError on failure."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(
            f"could not flush the directory {path.name} to disk: {_reason(exc)}"
        ) from None


def _reason(exc: OSError) -> str:
    return {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EIO: "an I/O error occurred",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission was denied",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def _io_error(path: Path, exc: OSError) -> StorageError:
    return StorageError(f"could not write {path.name}: {_reason(exc)}; nothing was changed")


def atomic_write(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically and durably, mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        raise _io_error(path, exc) from None
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise _io_error(path, exc) from None
    if sync_dir:
        try:
            fsync_dir(path.parent)
        except StorageError as exc:
            # The rename happened: the new content is visible but maybe not durable.
            raise StorageError(
                f"{path.name} was replaced but could not be made durable ({exc}); "
                "the change may be lost after a crash"
            ) from None


def write_new(path: Path, data: bytes) -> None:
    """Write a file that must not exist yet (content-addressed shards)."""
    if path.exists():
        return
    atomic_write(path, data, sync_dir=False)


def read_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


#: What this process says about itself in the lock's holder file.
_IDENTITY: dict[str, str] = {}
_HOLDER_MAX = 4096


def set_lock_identity(*, operator: str | None = None, command: str | None = None) -> None:
    """Name this process in the lock's holder file (front ends call this once
    they know the command and the acting operator). Never pass a secret."""
    if operator is not None:
        _IDENTITY["operator"] = operator
    if command is not None:
        _IDENTITY["command"] = command


def _printable(text: object, limit: int = 60) -> str:
    """Someone else's file: no control characters into our message."""
    out = "".join(ch if unicodedata.category(ch)[0] != "C" else "?" for ch in str(text))
    return out[:limit]


def _process_state(pid: int) -> str | None:
    """The state letter of ``/proc/PID/stat`` (R, S, T, Z...), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else None


class VaultLock:
    """Exclusive cross-process lock on ``<vault>/.lock`` (flock, never unlinked)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        if self._depth:
            self._depth += 1
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StorageError(
                    f"{self.path.name} is a symlink; refusing to lock through it"
                ) from None
            raise StorageError(f"cannot open the vault lock: {exc.strerror}") from None
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StorageError(self._busy_message()) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
        self._fd = fd
        self._depth = 1
        self._write_holder(json.dumps({
            "pid": os.getpid(), "operator": _IDENTITY.get("operator", ""),
            "command": _IDENTITY.get("command", ""), "since": time.time(),
        }).encode())

    @property
    def holder_path(self) -> Path:
        return self.path.with_name(self.path.name + ".holder")

    def _write_holder(self, data: bytes) -> None:
        """Best effort, under the lock, not fsynced: it only helps a message."""
        try:
            hfd = os.open(self.holder_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        except OSError:
            return
        try:
            os.ftruncate(hfd, 0)
            if data:
                # pwrite, not the write() of durable files: this one is best
                # effort, and a failure here is not a failed commit.
                os.pwrite(hfd, data, 0)
        except OSError:
            pass
        finally:
            os.close(hfd)

    def holder(self) -> dict[str, object] | None:
        """What the current holder wrote about itself, if it is still running."""
        try:
            hfd = os.open(self.holder_path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            raw = os.read(hfd, _HOLDER_MAX)
        except OSError:
            return None
        finally:
            os.close(hfd)
        try:
            doc = json.loads(raw)
            pid = int(doc["pid"])
        except (ValueError, KeyError, TypeError):
            return None
        state = _process_state(pid)
        if state is None or state == "Z":
            return None
        return {"pid": pid, "operator": _printable(doc.get("operator") or "?"),
                "command": _printable(doc.get("command") or "?"),
                "since": doc.get("since"), "stopped": state in ("T", "t")}

    def _busy_message(self) -> str:
        who = self.holder()
        if who is None:
            return ("the vault is busy (another glasskey process holds its lock); try again, "
                    "or wait longer with --wait SECONDS")
        since = ""
        if isinstance(who["since"], (int, float)):
            since = " since " + time.strftime("%H:%M:%S UTC", time.gmtime(float(who["since"])))
        stopped = "; that process is STOPPED (resume it with 'kill -CONT' or end it)" \
            if who["stopped"] else ""
        return (f"the vault is busy: glasskey process {who['pid']} (operator {who['operator']}, "
                f"command {who['command']}) has held its lock{since}{stopped}; try again, "
                "or wait longer with --wait SECONDS")

    def release(self) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            self._write_holder(b"")
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._depth > 0

    def __enter__(self) -> VaultLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
