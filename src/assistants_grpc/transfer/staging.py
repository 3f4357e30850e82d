"""The staging file: every object read, on disk, until all the input is known.

Objects may come in any order (messages before their thread, a dump in OpenAI's default
newest-first list order), so nothing is written to the database while reading: each object is
parsed, checked and put here (a temporary SQLite file, with its proto bytes), then written in an
order the database needs. Staged on disk, not in memory, so a dump larger than memory imports.

Three things are decided here, once everything is read:

- duplicates: a second object of a kind with an id already read is reported, the first kept;
- order: parents before children (kinds in registry order), and within a group (a thread's
  messages or runs, a run's steps, the assistants, the threads) the input order, reversed when
  it is newest first. Lists here walk rows in insertion order, and OpenAI's lists are newest
  first by default, so a dump made with `list()` would otherwise come back reversed. A group is
  taken as newest first when its `created_at` never rises and falls at least once; any other
  group keeps its input order (an export is in insertion order and comes back as it was);
- the moment runs active in the dump ended (`ends_at`), which their open steps and messages
  share whatever order they were read in.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["Duplicate", "Staged", "Staging"]

_SCHEMA: Final = """
CREATE TABLE staged (
    seq INTEGER PRIMARY KEY,      -- input order
    kind INTEGER NOT NULL,        -- registry position: parents first
    id TEXT NOT NULL,             -- the kind's key: its id, unless only unique under a parent
    grp TEXT NOT NULL,            -- ordering group (the thread of a message...)
    created_at INTEGER NOT NULL,
    source INTEGER NOT NULL,      -- index of the input file
    line INTEGER NOT NULL,
    ends_at INTEGER,              -- a run active in the dump: when it is taken as ended
    weight INTEGER NOT NULL,      -- bytes it brings beside its JSON (a File's content)
    data BLOB NOT NULL            -- the parsed object, serialized
);
"""
_INSERT: Final = (
    "INSERT INTO staged (kind, id, grp, created_at, source, line, ends_at, weight, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# After loading (an index built once is cheaper than one kept up to date row by row).
_INDEX: Final = "CREATE INDEX staged_kind_id ON staged (kind, id, seq)"
_DUPLICATES: Final = """
SELECT later.seq, later.kind, later.id, later.source, later.line, first.source, first.line
FROM (SELECT kind, id, MIN(seq) AS seq FROM staged GROUP BY kind, id HAVING COUNT(*) > 1) AS d
JOIN staged AS first ON first.seq = d.seq
JOIN staged AS later ON later.kind = d.kind AND later.id = d.id AND later.seq > d.seq
ORDER BY later.seq
"""
# Groups whose created_at never rises and falls at least once: newest first, to be reversed.
# `lo + hi - seq` reverses a group's input order in place among the other groups.
_ORDER: Final = """
CREATE TABLE write_order AS
WITH steps AS (
    SELECT kind, grp, seq,
           created_at - LAG(created_at) OVER (PARTITION BY kind, grp ORDER BY seq) AS rise
    FROM staged
), reversed AS (
    SELECT kind, grp, MIN(seq) AS lo, MAX(seq) AS hi FROM steps
    GROUP BY kind, grp HAVING MIN(rise) < 0 AND MAX(rise) <= 0
)
SELECT s.seq AS seq
FROM staged AS s LEFT JOIN reversed AS r ON r.kind = s.kind AND r.grp = s.grp
ORDER BY s.kind, CASE WHEN r.lo IS NULL THEN s.seq ELSE r.lo + r.hi - s.seq END, s.seq
"""
_IN_ORDER: Final = """
SELECT s.seq, s.kind, s.source, s.line, s.weight, s.data
FROM write_order AS w JOIN staged AS s ON s.seq = w.seq
ORDER BY w.rowid
"""
_FIND: Final = "SELECT source, line, ends_at FROM staged WHERE kind = ? AND id = ? ORDER BY seq"


@dataclass(frozen=True, slots=True)
class Staged:
    """One staged object, as the writer gets it back."""

    seq: int
    kind: int
    source: int
    line: int
    weight: int  # bytes beside its JSON (a File's content): they count in a batch's size
    data: bytes


@dataclass(frozen=True, slots=True)
class Duplicate:
    kind: int
    id: str
    source: int
    line: int
    first_source: int
    first_line: int


class Staging:
    """A temporary SQLite file (deleted on close); durability is off, it lives one command."""

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="assistants-import-", dir=directory)
        self._db = sqlite3.connect(Path(self._dir.name) / "staging.db", isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN")
        self._pending: list[tuple[int, str, str, int, int, int, int | None, int, bytes]] = []
        self.count = 0

    def add(
        self,
        kind: int,
        object_id: str,
        group: str,
        created_at: int,
        source: int,
        line: int,
        ends_at: int | None,
        weight: int,
        data: bytes,
    ) -> None:
        self._pending.append(
            (kind, object_id, group, created_at, source, line, ends_at, weight, data)
        )
        self.count += 1
        if len(self._pending) >= 1000:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany(_INSERT, self._pending)
        self._pending.clear()

    def finish(self) -> list[Duplicate]:
        """Everything is read: index it, take out the duplicates (returned, to be reported)
        and fix the write order."""
        self._flush()
        self._db.execute(_INDEX)
        duplicates = [Duplicate(*row[1:]) for row in self._db.execute(_DUPLICATES)]
        if duplicates:
            seqs = [(row[0],) for row in self._db.execute(_DUPLICATES)]
            self._db.executemany("DELETE FROM staged WHERE seq = ?", seqs)
            self.count -= len(seqs)
        self._db.execute(_ORDER)
        self._db.execute("COMMIT")
        return duplicates

    def in_order(self) -> Iterator[Staged]:
        """Every staged object, parents first, each group oldest first."""
        cursor = self._db.execute(_IN_ORDER)
        while rows := cursor.fetchmany(500):
            for row in rows:
                yield Staged(*row)

    def find(self, kind: int, object_id: str) -> tuple[int, int, int | None] | None:
        """Where an object of this kind and id was read (source, line), and its `ends_at`;
        None if it was not."""
        row = self._db.execute(_FIND, (kind, object_id)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def find_many(
        self, kind: int, object_ids: Sequence[str]
    ) -> dict[str, tuple[int, int, int | None]]:
        found: dict[str, tuple[int, int, int | None]] = {}
        for object_id in set(object_ids):
            hit = self.find(kind, object_id)
            if hit is not None:
                found[object_id] = hit
        return found

    @property
    def directory(self) -> Path:
        """The staging file's private temporary directory (removed on close)."""
        return Path(self._dir.name)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()
