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
from typing import Final

__all__ = ["MAX_TERMS", "fts5_query", "query_terms", "tsquery"]

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


def fts5_query(terms: list[str]) -> str | None:
    """An FTS5 MATCH expression over the `text` column: every term a quoted string, OR-ed.
    None when there is nothing to search for."""
    if not terms:
        return None
    # Terms hold letters and digits only, so there is no `"` to double; quoting anyway makes
    # NEAR, OR, AND, NOT plain words.
    return "text : (" + " OR ".join(f'"{term}"' for term in terms) + ")"


def tsquery(terms: list[str]) -> str | None:
    """A `to_tsquery('english', …)` text: every term a quoted lexeme, OR-ed (`|`). Quoted, a
    lexeme is never an operator; to_tsquery still stems it and drops English stop words."""
    if not terms:
        return None
    return " | ".join(f"'{term}'" for term in terms)
