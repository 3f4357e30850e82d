"""One search, few round trips, on either backend: the caller's check, the scope, the lexical
lists and the texts of their best chunks in one read; a second transaction only for texts that
only the dense lists found, or to move last_active_at (at most once a second per store). What
is found is the same as before: every hit carries its own chunk's text."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import event

from assistants_grpc.files.embeddings import normalise, to_bytes
from assistants_grpc.files.retrieval import Retriever, SearchQuery
from assistants_grpc.services.errors import NotFoundError
from assistants_grpc.store import migrate
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import Database
from tests.integration.vector_helpers import insert_store_of_one_file

TOPICS = ["tea", "kiwi", "granite", "violin", "glacier"]
DIMENSIONS = 8


def _vector(index: int) -> npt.NDArray[np.float32]:
    """Chunk `index`'s vector: near the others of its topic, and a little its own."""
    vector = np.zeros(DIMENSIONS, np.float32)
    vector[index % len(TOPICS)] = 1.0
    vector[len(TOPICS) + index % 3] = 0.1 * (index % 7)
    normalised: npt.NDArray[np.float32] = normalise(vector.reshape(1, -1))[0]
    return normalised


def _text(index: int) -> str:
    return f"chunk {index} about {TOPICS[index % len(TOPICS)]} number{index}"


def _seed(database: Database, store_id: str, *, dense: bool) -> None:
    def work(connection):  # type: ignore[no-untyped-def]
        insert_store_of_one_file(
            connection,
            store_id,
            f"file-{store_id}",
            "f.md",
            embedding_model="test-embedding" if dense else None,
        )
        repo.insert_rows(
            connection,
            vs.CHUNKS,
            [
                {"vector_store_id": store_id, "file_id": f"file-{store_id}", "seq": i,
                 "text": _text(i), "char_start": 0, "char_end": 1, "token_start": i,
                 "token_end": i + 1,
                 "embedding": to_bytes(_vector(i)) if dense else None}
                for i in range(200)
            ],
        )  # fmt: skip

    database.transaction_sync(work)


class _Embedder:
    """A query embedding without HTTP: the topic named in the question."""

    model = "test-embedding"

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        rows = np.zeros((len(texts), DIMENSIONS), np.float32)
        for row, text in zip(rows, texts, strict=True):
            for i, topic in enumerate(TOPICS):
                row[i] = float(topic in text)
        return normalise(rows)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    _seed(database, "vs_lexical", dense=False)
    _seed(database, "vs_dense", dense=True)
    try:
        yield database
    finally:
        database.dispose()


class _Transactions:
    def __init__(self, database: Database) -> None:
        self.count = 0
        event.listen(database.engine, "begin", self._begin)

    def _begin(self, connection: object) -> None:
        self.count += 1


def _check_hits(hits: Sequence[object]) -> list[int]:
    """Each hit's text is its own chunk's; the chunk numbers, in order."""
    numbers = []
    for hit in hits:
        number = int(hit.text.split()[1])  # type: ignore[attr-defined]
        assert hit.text == _text(number)  # type: ignore[attr-defined]
        assert hit.tokens == 1  # type: ignore[attr-defined]
        numbers.append(number)
    return numbers


async def test_a_lexical_search_is_one_read_once_the_store_is_touched(database: Database) -> None:
    now = [1_000]
    retriever = Retriever(database, lambda: now[0])
    transactions = _Transactions(database)
    query = SearchQuery(store_ids=["vs_lexical"], queries=["number7 granite?"], max_results=5)

    hits = await retriever.search(query)
    assert _check_hits(hits)[0] == 7
    assert transactions.count == 2  # the read, then last_active_at moved
    row = database.transaction_sync(lambda c: vs.stores_by_id(c, ["vs_lexical"]))[0]
    assert row["last_active_at"] == 1_000

    transactions.count = 0
    again = await retriever.search(query)
    assert [h.text for h in again] == [h.text for h in hits]
    assert transactions.count == 1  # the same second: the read alone

    now[0] += 1
    transactions.count = 0
    await retriever.search(query)
    assert transactions.count == 2


async def test_the_callers_check_runs_in_the_read_and_ends_the_search(database: Database) -> None:
    retriever = Retriever(database, lambda: 1_000)
    transactions = _Transactions(database)
    seen: list[str] = []

    def refuse(connection: object) -> None:
        seen.append("checked")
        raise NotFoundError("vector store", "vs_lexical")

    query = SearchQuery(["vs_lexical"], ["tea"], max_results=5, check=refuse)
    with pytest.raises(NotFoundError):
        await retriever.search(query)
    assert seen == ["checked"] and transactions.count == 1
    # Not touched: the search never began.
    row = database.transaction_sync(lambda c: vs.stores_by_id(c, ["vs_lexical"]))[0]
    assert row["last_active_at"] == 1
    # With no question, the check still runs.
    with pytest.raises(NotFoundError):
        await retriever.search(SearchQuery(["vs_lexical"], ["  "], max_results=5, check=refuse))


async def test_hybrid_hits_carry_the_texts_of_chunks_only_the_dense_list_found(
    database: Database,
) -> None:
    embedder = _Embedder()
    retriever = Retriever(database, lambda: 1_000, embedder=embedder)  # type: ignore[arg-type]
    # "glacier" is every fifth chunk's topic; "number3" only chunk 3's word. The dense list
    # brings glacier chunks the lexical list of "number3 glacier" ranks low or not at all.
    query = SearchQuery(["vs_dense"], ["number3 glacier"], max_results=20)
    hits = await retriever.search(query)
    numbers = _check_hits(hits)
    assert embedder.calls == 1
    assert len(numbers) == 20 and len(set(numbers)) == 20
    assert sum(n % len(TOPICS) == TOPICS.index("glacier") for n in numbers) >= 15
    lexical_only = Retriever(database, lambda: 1_000)
    plain = _check_hits(await lexical_only.search(query))
    assert set(plain) != set(numbers)  # the dense list changed what was found


class _Fetches:
    """The pks of each chunks_by_pk call (the texts fetched), on whichever thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after_first: object = None) -> None:
        self.calls: list[list[int]] = []
        original = vs.chunks_by_pk

        def fetch(connection, pks):  # type: ignore[no-untyped-def]
            wanted = list(pks)
            self.calls.append(wanted)
            try:
                return original(connection, wanted)
            finally:
                if after_first is not None and len(self.calls) == 1:
                    after_first()  # type: ignore[operator]

        monkeypatch.setattr(vs, "chunks_by_pk", fetch)


async def test_dense_lists_done_after_the_read_fetch_only_their_own_texts(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    read_done = asyncio.Event()
    fetches = _Fetches(monkeypatch, after_first=lambda: loop.call_soon_threadsafe(read_done.set))

    class Late(_Embedder):
        async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            await read_done.wait()  # the read has fetched the lexical candidates' texts
            return await super().embed(texts)

    retriever = Retriever(database, lambda: 1, embedder=Late())  # type: ignore[arg-type]
    hits = await retriever.search(SearchQuery(["vs_dense"], ["number3 glacier"], max_results=20))
    assert len(_check_hits(hits)) == 20
    first, second = fetches.calls  # last_active_at was 1 already: no touch
    assert second and not set(first) & set(second)


async def test_dense_lists_done_before_the_read_ends_are_fetched_with_it(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    retriever = Retriever(database, lambda: 1, embedder=_Embedder())  # type: ignore[arg-type]
    query = SearchQuery(["vs_dense"], ["number3 glacier"], max_results=20)
    await retriever.search(query)  # the store's vectors read once, into the cache
    dense_ready = threading.Event()
    original_dense = Retriever._dense_lists
    original_lexical = Retriever._lexical_lists

    async def dense(self, *args):  # type: ignore[no-untyped-def]
        try:
            return await original_dense(self, *args)
        finally:
            dense_ready.set()

    def lexical(self, *args):  # type: ignore[no-untyped-def]
        assert dense_ready.wait(60)  # on the read's thread: the loop goes on meanwhile
        return original_lexical(self, *args)

    monkeypatch.setattr(Retriever, "_dense_lists", dense)
    monkeypatch.setattr(Retriever, "_lexical_lists", lexical)
    fetches = _Fetches(monkeypatch)
    transactions = _Transactions(database)
    hits = await retriever.search(query)
    assert len(_check_hits(hits)) == 20
    assert len(fetches.calls) == 1 and transactions.count == 1
