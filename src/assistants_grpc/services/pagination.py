"""List paging as CONTRACT.md §1: `limit` 1..100 (default 20), `order` (default desc), exclusive
`after`/`before` cursors, and pages that report `first_id`/`last_id`/`has_more`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, cast

from google.protobuf.message import Message as ProtoMessage

from assistants_grpc.contract.pb import common_pb2
from assistants_grpc.services.errors import FieldViolation, InvalidArgumentError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class ForwardListRequest(Protocol):
    """The paging fields of a list that only pages forward (ListFiles, like OpenAI's)."""

    @property
    def limit(self) -> int: ...
    @property
    def order(self) -> common_pb2.ListOrder.ValueType: ...
    @property
    def after(self) -> str: ...
    def HasField(self, field_name: Literal["limit", "after"]) -> bool: ...


class ListRequest(ForwardListRequest, Protocol):
    """The paging fields every other List*Request has."""

    @property
    def before(self) -> str: ...
    def HasField(self, field_name: Literal["limit", "after", "before"]) -> bool: ...


def _has_before(request: ForwardListRequest) -> bool:
    return isinstance(request, ProtoMessage) and "before" in request.DESCRIPTOR.fields_by_name


@dataclass(frozen=True)
class PageRequest:
    limit: int
    ascending: bool
    after: str | None
    before: str | None


def page_request(
    request: ForwardListRequest,
    *,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
) -> PageRequest:
    violations: list[FieldViolation] = []
    limit = request.limit if request.HasField("limit") else default_limit
    if limit < 1:
        violations.append(
            FieldViolation("limit", f"integer below minimum value. Expected >= 1, got {limit}.")
        )
    elif limit > max_limit:
        violations.append(
            FieldViolation(
                "limit", f"integer above maximum value. Expected <= {max_limit}, got {limit}."
            )
        )
    if request.order not in (
        common_pb2.LIST_ORDER_UNSPECIFIED,
        common_pb2.LIST_ORDER_ASC,
        common_pb2.LIST_ORDER_DESC,
    ):
        violations.append(FieldViolation("order", f"unknown order value {request.order}."))
    after = request.after if request.HasField("after") else None
    before = None
    if _has_before(request):
        with_before = cast(ListRequest, request)
        before = with_before.before if with_before.HasField("before") else None
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None and not cursor:
            violations.append(FieldViolation(name, "must be an object id, not empty."))
    if violations:
        raise InvalidArgumentError(violations)
    return PageRequest(
        limit=limit,
        ascending=request.order == common_pb2.LIST_ORDER_ASC,
        after=after or None,
        before=before or None,
    )


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ForwardListRequest",
    "ListRequest",
    "PageRequest",
    "page_request",
]
