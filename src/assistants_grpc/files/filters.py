"""Attribute filters (OpenAI's ComparisonFilter / CompoundFilter JSON), checked and evaluated.

Filters are evaluated over a store's files (their attributes live on the file row), before any
ranking: the search then ranks only chunks of the files that pass, so a filter never empties a
result list that a wider candidate pool would have filled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["COMPARISONS", "COMPOUNDS", "MAX_FILTER_DEPTH", "MAX_FILTER_NODES", "check", "matches"]

COMPARISONS: Final = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
COMPOUNDS: Final = frozenset({"and", "or"})
MAX_FILTER_DEPTH: Final = 8
MAX_FILTER_NODES: Final = 100

Scalar = str | int | float | bool


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def check(value: Any, path: str = "filters") -> list[tuple[str, str]]:
    """Every problem of a filter as (field path, description); empty when it is valid."""
    problems: list[tuple[str, str]] = []
    nodes = 0
    pending: list[tuple[Any, str, int]] = [(value, path, 1)]
    while pending:
        node, at, depth = pending.pop()
        nodes += 1
        if nodes > MAX_FILTER_NODES:
            problems.append((path, f"at most {MAX_FILTER_NODES} filters in all."))
            break
        if depth > MAX_FILTER_DEPTH:
            problems.append((at, f"nested too deeply: at most {MAX_FILTER_DEPTH} levels."))
            continue
        if not isinstance(node, Mapping):
            problems.append((at, "must be an object."))
            continue
        kind = node.get("type")
        if kind in COMPOUNDS:
            filters = node.get("filters")
            if not isinstance(filters, list) or not filters:
                problems.append((f"{at}.filters", "must hold at least one filter."))
                continue
            for i, child in enumerate(filters):
                pending.append((child, f"{at}.filters[{i}]", depth + 1))
        elif kind in COMPARISONS:
            if not isinstance(node.get("key"), str) or not node["key"]:
                problems.append((f"{at}.key", "required."))
            item = node.get("value")
            if kind in ("in", "nin"):
                if not isinstance(item, list) or not all(
                    isinstance(v, str | int | float) and not isinstance(v, bool) for v in item
                ):
                    problems.append((f"{at}.value", "must be a list of strings or numbers."))
            elif item is None or not _is_scalar(item):
                problems.append((f"{at}.value", "must be a string, number or boolean."))
        else:
            problems.append(
                (f"{at}.type", "must be one of eq, ne, gt, gte, lt, lte, in, nin, and, or.")
            )
    return problems


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_kind(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return True
    return type(a) is type(b)


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


def _compare(kind: str, actual: Any, expected: Any) -> bool:
    if kind == "eq":
        return actual is not None and _equal(actual, expected)
    if kind == "ne":
        return actual is None or not _equal(actual, expected)
    if kind == "in":
        return actual is not None and any(_equal(actual, v) for v in expected)
    if kind == "nin":
        return actual is None or not any(_equal(actual, v) for v in expected)
    # Orderings hold between two numbers or two strings; anything else does not compare.
    if actual is None or isinstance(actual, bool) or not _same_kind(actual, expected):
        return False
    if kind == "gt":
        return bool(actual > expected)
    if kind == "gte":
        return bool(actual >= expected)
    if kind == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def matches(node: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """Whether `attributes` pass the (checked) filter `node`."""
    kind = node["type"]
    if kind == "and":
        return all(matches(child, attributes) for child in node["filters"])
    if kind == "or":
        return any(matches(child, attributes) for child in node["filters"])
    return _compare(kind, attributes.get(node["key"]), node["value"])
