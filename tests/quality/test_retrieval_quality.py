"""Retrieval quality on a real corpus the project carries: the topic texts of
`pydoc_data.topics` (79 files, ~465k characters, shipped with CPython) and 50 questions written
for them (questions.py). recall@5 (an answering file among the first five results) and MRR
(1 / rank of the first answering result) are measured on each backend, lexical and hybrid (the
fake model's deterministic embeddings). The bars sit below the measured values (see
MEASURED): they catch a regression, not noise."""

from __future__ import annotations

import pydoc_data.topics

import pytest

from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.fake_model import FakeModelServer
from tests.conftest import serving
from tests.integration.vector_helpers import make_file, stores, wait_ingested
from tests.quality.questions import QUESTIONS

# Measured at this commit (CPython 3.11's topics): (recall@5, MRR).
MEASURED = {
    ("sqlite", "lexical"): (0.98, 0.864),
    ("postgresql", "lexical"): (0.94, 0.848),
    ("sqlite", "hybrid"): (0.98, 0.868),
    ("postgresql", "hybrid"): (0.96, 0.867),
}
MARGIN = 0.06


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
async def test_recall_and_mrr(database_url: str, fake_model: FakeModelServer, mode: str) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    settings = {"ingestion_concurrency": 2}
    if mode == "hybrid":
        settings["embedding_model"] = "fake-embedding"  # type: ignore[assignment]
    async with serving(database_url, fake_model, **settings) as running:
        names = {}
        for topic, text in sorted(pydoc_data.topics.topics.items()):
            names[await make_file(running, f"{topic}.txt", text.encode())] = topic
        stub = stores(running)
        store = await stub.CreateVectorStore(V.CreateVectorStoreRequest(file_ids=list(names)))
        done = await wait_ingested(running, store.id, timeout=400)
        assert done.file_counts.completed == len(names)
        hits = 0
        reciprocal = 0.0
        misses = []
        for question, answers in QUESTIONS:
            found = await stub.SearchVectorStore(
                V.SearchVectorStoreRequest(
                    vector_store_id=store.id, query=[question], max_num_results=10
                )
            )
            topics = [names[r.file_id] for r in found.data]
            rank = next((i for i, t in enumerate(topics, 1) if t in answers), None)
            if rank is not None and rank <= 5:
                hits += 1
            if rank is not None:
                reciprocal += 1 / rank
            else:
                misses.append(question)
    recall, mrr = hits / len(QUESTIONS), reciprocal / len(QUESTIONS)
    print(f"\nretrieval quality {backend} {mode}: recall@5 {recall:.3f} MRR {mrr:.3f}; "
          f"missed {misses}")  # fmt: skip
    expected_recall, expected_mrr = MEASURED[(backend, mode)]
    assert recall >= expected_recall - MARGIN
    assert mrr >= expected_mrr - MARGIN
