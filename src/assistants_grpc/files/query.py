"""User text → the database's full-text query language, always quoted.

A question is data, never syntax: `?`, `'`, `-`, `"`, `*`, `NEAR`, `OR`, `AND`, `NOT`, `:`
and parentheses all mean something to FTS5 or to `to_tsquery`, and a question containing them
must neither fail nor change the query's meaning. So the text is cut into words (letters and
digits only; everything else separates), each word becomes a quoted term, and the terms are
OR-ed: bm25 / ts_rank reward the chunks that match more, and rarer, terms. Very common English
words are dropped when others remain (they match nearly every chunk, and cost the most to
rank).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "INDEX_POSTING_BUDGET",
    "MAX_TERMS",
    "POSTING_BUDGET",
    "TSQUERY_POSTING_BUDGET",
    "TSQUERY_RANKED_MAX",
    "Pruned",
    "fts5_query",
    "posting_budget",
    "prune_terms",
    "query_terms",
    "tsquery",
]

# Letters and digits of any script; `_` separates (FTS5's and PostgreSQL's parsers split on it).
_WORD = re.compile(r"[^\W_]+")
MAX_TERMS: Final = 32
_STOPWORDS: Final = frozenset(
    """
    a an and are as at be by do does for from how i if in into is it its me my of on or so
    than that the their them then there these they this to was were what when where which who
    why will with you your can could should would about
    """.split()
)


def query_terms(text: str) -> list[str]:
    """The distinct words of `text`, lowercased, in order, stop words dropped unless nothing
    else is left; at most MAX_TERMS."""
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
    kept = [word for word in words if word not in _STOPWORDS] or words
    return kept[:MAX_TERMS]


def fts5_query(terms: Sequence[str], *, conjunctive: bool = False) -> str | None:
    """An FTS5 MATCH expression over the `text` column: every term a quoted string, OR-ed
    (AND-ed if `conjunctive`). None when there is nothing to search for."""
    if not terms:
        return None
    # Terms hold letters and digits only, so there is no `"` to double; quoting anyway makes
    # NEAR, OR, AND, NOT plain words.
    joiner = " AND " if conjunctive else " OR "
    return "text : (" + joiner.join(f'"{term}"' for term in terms) + ")"


# Chunks of a store a lexical search may rank (estimated: the kept terms' postings, summed).
# FTS5's bm25 costs ~1-2 µs a matching chunk: an OR of common words over 100,000 chunks ranks
# most of them (100-300 ms).
POSTING_BUDGET: Final = 4_000
# And postings of the whole index (every store's) it may read: bm25 reads every term's whole
# posting list for its document frequency (~0.1 µs a posting), whatever the store.
INDEX_POSTING_BUDGET: Final = 150_000


# PostgreSQL reads every matching chunk's heap row to rank it: ~2 µs a chunk from shared
# buffers, ~10 µs when its page must be read in (a 100,000-chunk store's rows are ~120 MB, about
# all of the default 128 MB of shared_buffers). Several times FTS5's cost, so fewer chunks: at
# 2,000 a question of a 100,000-chunk store takes ~6 ms of ranking (at 4,000, ~11 ms; the
# first answers of 50 questions amid 100,000 filler chunks were no worse).
TSQUERY_POSTING_BUDGET: Final = 2_000
# And at most this many are ranked, whatever the estimate was: a question of common words
# matches half a store whatever terms are kept (~150-250 ms to rank them all). Above the
# budget, for the estimate's error (words sharing a stem, words found together).
TSQUERY_RANKED_MAX: Final = 3_000


def posting_budget(share: float, budget: int = POSTING_BUDGET) -> int:
    """The budget of postings counted over the whole index, for a store that is `share` of it
    and may rank `budget` chunks: only its own chunks are ranked, but every store's postings
    are read."""
    return min(INDEX_POSTING_BUDGET, int(budget / max(share, 0.05)))


@dataclass(frozen=True)
class Pruned:
    terms: list[str]
    conjunctive: bool
    """The terms are AND-ed: even the rarest alone matches more than the budget."""
    fallback: list[str]
    """When the AND-ed terms find too few chunks: the rarest term, OR-ed alone."""


def prune_terms(
    terms: Sequence[str], counts: Mapping[str, int], rows: int, budget: int = POSTING_BUDGET
) -> Pruned:
    """The terms a big index is searched with, from each term's document count.

    When the terms' postings fit the budget, all of them (a small store is always searched
    with every word). Otherwise the rarest terms that fit: a common word's inverse document
    frequency is small (nil at half the chunks), so the chunks it alone would add rank last,
    and among the chunks of rare words it only nudges the order. When even the rarest word
    is too common, the chunks holding the rarest few words together (estimated to fit the
    budget): under bm25 over OR-ed common words, the chunks that hold more of them rank first.
    Words no chunk holds are left out (they change no score)."""
    total = sum(counts.get(term, 0) for term in terms)
    if total <= budget:
        return Pruned(list(terms), False, [])
    present = sorted((t for t in terms if counts.get(t, 0) > 0), key=lambda t: counts[t])
    kept: list[str] = []
    postings = 0
    for term in present:
        if kept and postings + counts[term] > budget:
            break
        kept.append(term)
        postings += counts[term]
    if postings <= budget:
        return Pruned([t for t in terms if t in kept], False, [])
    together = [present[0]]
    estimate = float(counts[present[0]])
    for term in present[1:]:
        if estimate <= budget:
            break
        together.append(term)
        estimate *= counts[term] / max(rows, 1)
    if len(together) == 1:
        return Pruned(together, False, [])
    return Pruned(together, True, [present[0]])


def tsquery(terms: Sequence[str], *, conjunctive: bool = False) -> str | None:
    """A `to_tsquery('english', …)` text: every term a quoted lexeme, OR-ed (`|`; AND-ed, `&`,
    if `conjunctive`). Quoted, a lexeme is never an operator; to_tsquery still stems it and
    drops English stop words."""
    if not terms:
        return None
    return (" & " if conjunctive else " | ").join(f"'{term}'" for term in terms)
