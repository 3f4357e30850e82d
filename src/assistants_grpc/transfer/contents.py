"""The bytes of Files beside a dump: where `import` finds them and how it stores them, and where
`export` writes them.

Where. People who dumped their Files through the SDK saved `client.files.content(id)` in files
named by the id. For a `file` object read from `DUMP`, the importer takes the first of:
`DUMP.files/<id>` (what `export DUMP` writes), `files/<id>` beside DUMP, and `<id>` beside DUMP;
`--files-dir DIR` names the one place to look instead (`DIR/<id>`). Ids are checked before
(`[A-Za-z0-9_-]`), so an id never walks out of the directory.

How. Before the transaction that writes a batch, each File's bytes are copied into a scratch
directory of this import (on the blobs' filesystem for the disk store, so that storing is a
rename), hashed as they are copied, and their size is checked against the object's `bytes`.
Inside the transaction they are stored content-addressed through the files layer
(`FileStorage.add_content`: moved into place on disk, written as parts on PostgreSQL), with the
size limit and the project's quota checked there (`FileStorage.check_fits`). Copying first keeps
the transaction short, so a server using the same SQLite file waits for no copying, and the
bytes stored are the ones hashed even if the source changes meanwhile. A File stored already
with the same size is hashed first, without a copy: equal bytes (a rerun) are not copied again.

A batch holds at most `batch_bytes` of content (the File's `weight`), so the scratch directory
holds one batch's bytes at a time, or one File larger than that.

The scratch directory is `import-*` under the store's temporary directory, locked (`flock`) for
as long as the import runs; an import that finds one whose lock nobody holds (a killed import's)
removes it. The server's own start-up clean-up removes files only there, never these folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from sqlalchemy import Connection, RowMapping

from assistants_grpc.files.storage import PART_SIZE, FileLimitError, FileStorage
from assistants_grpc.store.database import Database
from assistants_grpc.transfer.kinds._base import Refused

__all__ = ["FILES_SUFFIX", "Contents", "Fetched", "write_content"]

# `export OUT` writes the bytes of Files under `OUT.files/`.
FILES_SUFFIX: Final = ".files"
_SCRATCH_PREFIX: Final = "import-"
_LOCK: Final = ".lock"
# A scratch folder without its lock file is only taken as abandoned after this long (a
# concurrent import may be between making it and locking it).
_UNLOCKED_GRACE_SECONDS: Final = 300.0


@dataclass
class Fetched:
    """A File's bytes, ready for its transaction: their sha256 and size, and the copy to store
    them from (None when only hashed: the same bytes are stored already)."""

    sha256: str
    size: int
    copy: Path | None
    stored: bool = False  # moved or read into the content store by a transaction


class Contents:
    """The Files' bytes of one import."""

    def __init__(
        self,
        database: Database,
        storage: FileStorage,
        *,
        files_dir: Path | None = None,
        scratch_parent: Path | None = None,
    ) -> None:
        self._database = database
        self.storage = storage
        self._files_dir = files_dir
        self._scratch_parent = scratch_parent
        self._scratch: _Scratch | None = None
        self._fetched: dict[str, Fetched] = {}
        # Per transaction: bytes of new Files by project (their rows are written after the
        # quota check of the next one), and contents whose last File let go of them.
        self._pending: dict[str, int] = {}
        self._dropped: list[str] = []

    # -- where ------------------------------------------------------------------------------

    def places(self, source: Path, file_id: str) -> list[Path]:
        """Where the bytes of `file_id`, read from the dump `source`, may be, in order."""
        if self._files_dir is not None:
            return [self._files_dir / file_id]
        return [
            source.with_name(source.name + FILES_SUFFIX) / file_id,
            source.parent / "files" / file_id,
            source.parent / file_id,
        ]

    # -- before the transaction -------------------------------------------------------------

    def fetch(self, file_id: str, size: int, source: Path, stored: RowMapping | None) -> None:
        """Get the bytes of a File of `size` bytes ready (Refused if they cannot be had)."""
        if size > self.storage.max_file_bytes:
            raise Refused(
                "bytes",
                f"The file is larger than the limit of {self.storage.max_file_bytes} bytes.",
            )
        places = self.places(source, file_id)
        path = next((p for p in places if p.is_file()), None)
        if path is None:
            where = ", ".join(str(p) for p in places)
            raise Refused("bytes", f"its content is in none of {where} (a File needs its bytes)")
        try:
            if stored is not None and stored["bytes"] == size:
                digest = _hash(path, size)
                if digest == stored["sha256"]:
                    self._fetched[file_id] = Fetched(digest, size, None)
                    return
            copy = self._scratch_dir() / file_id
            digest = _copy(path, size, copy)
        except OSError as error:  # unreadable, or no room for the copy: this File only
            raise Refused("bytes", f"{path}: {error.strerror or error}") from None
        self._fetched[file_id] = Fetched(digest, size, copy)

    def get(self, file_id: str) -> Fetched:
        return self._fetched[file_id]

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = _Scratch(self.storage.local_scratch() or self._scratch_parent)
        return self._scratch.path

    # -- in the transaction -----------------------------------------------------------------

    def begin(self) -> None:
        self._pending.clear()
        self._dropped.clear()

    def admit(
        self, connection: Connection, project: str, fetched: Fetched, *, freed: int, now: int
    ) -> None:
        """Check that the bytes fit (size limit, quota, counting what this transaction added
        so far and `freed`, the bytes of the stored File being written over)."""
        pending = self._pending.get(project, 0) - freed
        try:
            self.storage.check_fits(connection, project, fetched.size, now=now, pending=pending)
        except FileLimitError as error:
            raise Refused("bytes", str(error)) from None
        self._pending[project] = pending + fetched.size

    def store(self, connection: Connection, fetched: Fetched, *, now: int) -> None:
        """Count the File as one more of its content, storing the bytes if they are new."""
        if not self.storage.add_content(
            connection, fetched.sha256, fetched.size, fetched.copy, now=now
        ):
            # Only hashed (they were stored), and gone since the look before the transaction.
            raise Refused("bytes", "its stored content was deleted meanwhile; import it again")
        if fetched.copy is not None and not fetched.copy.exists():
            fetched.stored = True  # moved into place (disk); read into parts leaves it

    def drop(self, connection: Connection, sha256: str) -> None:
        """The File written over had other bytes: it lets go of them."""
        if self.storage.drop_content(connection, sha256):
            self._dropped.append(sha256)

    # -- after the transaction --------------------------------------------------------------

    def committed(self) -> None:
        """Remove what written-over Files let go of (disk blobs go after the commit)."""
        for sha256 in self._dropped:
            self._database.transaction_sync(
                lambda c, sha256=sha256: self.storage.content.discard_unreferenced_sync(c, sha256)  # type: ignore[misc]
            )
        self._dropped.clear()

    def rolled_back(self) -> None:
        """A transaction failed: bytes it moved into place are named by nothing now."""
        for fetched in self._fetched.values():
            if fetched.stored:
                self._database.transaction_sync(
                    lambda c, f=fetched: self.storage.content.discard_unreferenced_sync(c, f.sha256)  # type: ignore[misc]
                )
        self._dropped.clear()

    def release(self) -> None:
        """The batch is over: its copies go."""
        for fetched in self._fetched.values():
            if fetched.copy is not None:
                fetched.copy.unlink(missing_ok=True)
        self._fetched.clear()

    def close(self) -> None:
        self.release()
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None


def _hash(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    count = 0
    with path.open("rb") as source:
        while data := source.read(PART_SIZE):
            count += len(data)
            if count > size:
                break
            digest.update(data)
    _check_size(path, count, size)
    return digest.hexdigest()


def _copy(path: Path, size: int, target: Path) -> str:
    """Copy `path` to `target` (a new file), hashing it; Refused unless it has `size` bytes."""
    digest = hashlib.sha256()
    count = 0
    try:
        with path.open("rb") as source, target.open("xb") as out:
            while data := source.read(PART_SIZE):
                count += len(data)
                if count > size:
                    break
                digest.update(data)
                out.write(data)
            out.flush()
            # Durable before a rename puts it under its content's name.
            os.fsync(out.fileno())
        _check_size(path, count, size)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _check_size(path: Path, count: int, size: int) -> None:
    if count != size:
        found = f"more than {size}" if count > size else str(count)
        raise Refused("bytes", f"{path} has {found} bytes, and the file object says {size}")


class _Scratch:
    """A folder of this import, locked while it lives; abandoned ones beside it are removed."""

    def __init__(self, parent: Path | None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX, dir=parent))
        self._lock: IO[bytes] | None = (self.path / _LOCK).open("wb")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        if parent is not None:
            for other in parent.glob(_SCRATCH_PREFIX + "*"):
                if other != self.path and other.is_dir():
                    _remove_if_abandoned(other)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _remove_if_abandoned(folder: Path) -> None:
    try:
        lock = (folder / _LOCK).open("rb")
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            if time.time() - folder.stat().st_mtime > _UNLOCKED_GRACE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
        return
    except OSError:
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another import's, alive
        shutil.rmtree(folder, ignore_errors=True)


def write_content(target: Path, parts: Iterable[bytes]) -> None:
    """Write a File's bytes (an iterator of parts) to `target`, through a temporary file beside
    it renamed into place once complete: an interrupted export leaves no truncated file under
    a File's id."""
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for data in parts:
                out.write(data)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
