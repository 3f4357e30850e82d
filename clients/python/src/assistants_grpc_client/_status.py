"""Rich error details: the `google.rpc.Status` a server sends in `grpc-status-details-bin`.

The server packs `google.rpc.BadRequest` (the fields at fault) and `google.rpc.ErrorInfo` into
the status as `Any`. Reading them the usual way needs `grpcio-status` and
`googleapis-common-protos`; this package depends on `grpcio` and `protobuf` only, so it declares
the three messages itself, wire-compatible (same field numbers and types), in a private
descriptor pool: the process may also hold the real `google.rpc` files (a server, or a user who
installed googleapis-common-protos), and a second definition of the same names in the default
pool would clash with them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

__all__ = ["ErrorInfo", "FieldViolation", "StatusDetails", "details_from_metadata"]

STATUS_DETAILS_KEY = "grpc-status-details-bin"
_TYPE_PREFIX = "type.googleapis.com/"
_BAD_REQUEST = "google.rpc.BadRequest"
_ERROR_INFO = "google.rpc.ErrorInfo"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One field of a request that was rejected, from `google.rpc.BadRequest`."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The machine-readable cause of an error, from `google.rpc.ErrorInfo`."""

    reason: str
    domain: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusDetails:
    """What the rich status says beyond the code and message."""

    message: str
    field_violations: tuple[FieldViolation, ...] = ()
    error_info: ErrorInfo | None = None


_F = descriptor_pb2.FieldDescriptorProto


def _field(
    name: str, number: int, kind: Any, *, repeated: bool = False, type_name: str = ""
) -> Any:
    label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    field = _F(name=name, number=number, type=kind, label=label)
    if type_name:  # set at all, even empty, it claims the field is a message or an enum
        field.type_name = type_name
    return field


@functools.cache
def _classes() -> dict[str, Any]:
    """The message classes, built on first use: importing the package (which the server also
    does, for the generated code) should not pay for it."""
    package = "assistants_grpc_client.rpc"
    file = descriptor_pb2.FileDescriptorProto(
        name="assistants_grpc_client/rpc_status.proto", package=package, syntax="proto3"
    )
    any_ = file.message_type.add(name="Any")
    any_.field.extend([_field("type_url", 1, _F.TYPE_STRING), _field("value", 2, _F.TYPE_BYTES)])
    status = file.message_type.add(name="Status")
    status.field.extend(
        [
            _field("code", 1, _F.TYPE_INT32),
            _field("message", 2, _F.TYPE_STRING),
            _field("details", 3, _F.TYPE_MESSAGE, repeated=True, type_name=f".{package}.Any"),
        ]
    )
    bad_request = file.message_type.add(name="BadRequest")
    violation = bad_request.nested_type.add(name="FieldViolation")
    violation.field.extend(
        [
            _field("field", 1, _F.TYPE_STRING),
            _field("description", 2, _F.TYPE_STRING),
            _field("reason", 3, _F.TYPE_STRING),
        ]
    )
    bad_request.field.append(
        _field(
            "field_violations",
            1,
            _F.TYPE_MESSAGE,
            repeated=True,
            type_name=f".{package}.BadRequest.FieldViolation",
        )
    )
    error_info = file.message_type.add(name="ErrorInfo")
    entry = error_info.nested_type.add(name="MetadataEntry")
    entry.options.map_entry = True
    entry.field.extend([_field("key", 1, _F.TYPE_STRING), _field("value", 2, _F.TYPE_STRING)])
    error_info.field.extend(
        [
            _field("reason", 1, _F.TYPE_STRING),
            _field("domain", 2, _F.TYPE_STRING),
            _field(
                "metadata",
                3,
                _F.TYPE_MESSAGE,
                repeated=True,
                type_name=f".{package}.ErrorInfo.MetadataEntry",
            ),
        ]
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in ("Status", "BadRequest", "ErrorInfo")
    }


def parse_status(blob: bytes) -> StatusDetails | None:
    """Decode a serialized `google.rpc.Status`; None when it is not one."""
    status = _classes()["Status"]()
    try:
        status.ParseFromString(blob)
    except DecodeError:
        return None
    violations: list[FieldViolation] = []
    info: ErrorInfo | None = None
    for detail in status.details:
        type_name = str(detail.type_url).removeprefix(_TYPE_PREFIX)
        try:
            if type_name == _BAD_REQUEST:
                bad_request = _classes()["BadRequest"].FromString(detail.value)
                violations.extend(
                    FieldViolation(str(v.field), str(v.description), str(v.reason))
                    for v in bad_request.field_violations
                )
            elif type_name == _ERROR_INFO and info is None:
                parsed = _classes()["ErrorInfo"].FromString(detail.value)
                info = ErrorInfo(str(parsed.reason), str(parsed.domain), dict(parsed.metadata))
        except DecodeError:
            continue  # one unreadable detail must not hide the error itself
    return StatusDetails(str(status.message), tuple(violations), info)


def details_from_metadata(
    metadata: Iterable[tuple[str, str | bytes]] | None,
) -> StatusDetails | None:
    """The rich status in a call's trailing metadata, if the server sent one."""
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return parse_status(value)
    return None
