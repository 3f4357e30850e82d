"""A `POST /v1/files` body (multipart/form-data) read as the FileService's upload stream: the
metadata message, then the file's bytes as chunks, as they arrive from the socket.

The form has the file part `file` (its filename from Content-Disposition) and the fields
`purpose` and `expires_after[anchor]` / `expires_after[seconds]` (the SDK's bracket form). The
SDK sends the fields first, so the file's bytes go to storage as they are parsed, never held
whole. A client that sends the file before `purpose` gets the same answer: its bytes are spooled
to a temporary file (disk past 1 MiB, capped at the size limit) until the fields are known, then
replayed. A field after a file already streamed is refused, since the File's metadata is fixed
by then. Anything wrong (not multipart, a broken body, a missing part, an interrupted upload)
raises from the stream, and the service then stores nothing (`FileService.upload`).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import IO, Final

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from assistants_grpc.contract.pb import file_pb2
from assistants_grpc.files.storage import FileLimitError
from assistants_grpc.http.errors import HttpError
from assistants_grpc.services.errors import InvalidArgumentError
from assistants_grpc.services.files import limit_error

FILE_FIELD: Final = "file"
# What a form field (not the file) may hold, and how many parts a form may have: the fields are
# a purpose and a number, never large.
MAX_FIELD_BYTES: Final = 64 * 1024
MAX_PARTS: Final = 16
# More than a form around a file adds (its fields, each part's headers, the boundaries): a body
# whose Content-Length passes the size limit by more than this is refused unread.
FORM_OVERHEAD: Final = 2 * MAX_PARTS * MAX_FIELD_BYTES
# A spooled file (sent before its fields) stays in memory up to this, then moves to disk.
SPOOL_MEMORY: Final = 1024 * 1024
# What is handed to storage at once: parser output is joined up to this many bytes.
CHUNK_BYTES: Final = 256 * 1024

# The purposes an upload may name ('assistants_output' is refused by the service with its reason).
_PURPOSES: Final = frozenset(file_pb2.FilePurpose.keys()) - {"FILE_PURPOSE_UNSPECIFIED"}
_EXPIRES_FIELDS: Final = {
    "expires_after[anchor]": "anchor",
    "expires_after[seconds]": "seconds",
}


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    disposition: bytes = b""
    header_name: bytes = b""
    header_value: bytes = b""
    header_bytes: int = 0
    data: bytearray = field(default_factory=bytearray)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "A multipart field is not UTF-8 text.") from None


class _Form:
    """The parser's callbacks, collecting fields and the file's bytes for the reader."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_started = False
        self.file_ended = False
        self.pending: list[bytes] = []  # file bytes parsed and not yet handed on
        self.parts = 0
        self._part = _Part()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise HttpError(400, f"A file upload has at most {MAX_PARTS} form parts.")
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_name += data[start:end]
        self._count_header(end - start)

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]
        self._count_header(end - start)

    def _count_header(self, size: int) -> None:
        self._part.header_bytes += size
        if self._part.header_bytes > MAX_FIELD_BYTES:
            raise HttpError(400, "The headers of a multipart part are too long.")

    def _header_end(self) -> None:
        part = self._part
        if part.header_name.lower() == b"content-disposition":
            part.disposition = part.header_value
        part.header_name = b""
        part.header_value = b""

    def _headers_finished(self) -> None:
        part = self._part
        _, options = parse_options_header(part.disposition)
        name = options.get(b"name")
        if name is None:
            raise HttpError(400, "A multipart part has no name in its Content-Disposition.")
        part.name = _decode(name)
        if part.name == FILE_FIELD:
            if self.file_started:
                raise InvalidArgumentError.single(FILE_FIELD, "given more than once.")
            filename = options.get(b"filename")
            if filename is None:
                raise InvalidArgumentError.single(FILE_FIELD, "must be a file, with a filename.")
            self.filename = _decode(filename)
            self.file_started = True
        elif part.name not in ("purpose", *_EXPIRES_FIELDS):
            raise HttpError(400, f"Unrecognized request argument: {part.name}", param=part.name)
        elif part.name in self.fields:
            raise InvalidArgumentError.single(part.name, "given more than once.")

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.name == FILE_FIELD:
            self.pending.append(data[start:end])
            return
        part.data += data[start:end]
        if len(part.data) > MAX_FIELD_BYTES:
            raise InvalidArgumentError.single(part.name, "is too long.")

    def _end(self) -> None:
        part = self._part
        if part.name == FILE_FIELD:
            self.file_ended = True
        else:
            self.fields[part.name] = _decode(bytes(part.data))

    def take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        return data


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HttpError(
            400,
            "A file upload must be sent as multipart/form-data (with a boundary), "
            "with the file in the part 'file'.",
        )
    return boundary


def metadata(form: _Form) -> file_pb2.UploadFileRequest:
    """The upload's first message, from the fields read so far (the service checks them)."""
    fields = form.fields
    meta = file_pb2.UploadFileMetadata(filename=form.filename or "")
    purpose = fields.get("purpose")
    if purpose is None:
        raise InvalidArgumentError.single("purpose", "required.")
    name = "FILE_PURPOSE_" + purpose.upper()
    if purpose != purpose.lower() or name not in _PURPOSES:
        raise InvalidArgumentError.single(
            "purpose", "must be one of 'assistants', 'vision' or 'user_data'."
        )
    meta.purpose = file_pb2.FilePurpose.Value(name)
    if any(name in fields for name in _EXPIRES_FIELDS):
        anchor = fields.get("expires_after[anchor]")
        seconds = fields.get("expires_after[seconds]")
        if anchor is None:
            raise InvalidArgumentError.single("expires_after.anchor", "required.")
        if seconds is None or not seconds.strip().isdigit():
            raise InvalidArgumentError.single("expires_after.seconds", "expected an integer.")
        meta.expires_after.anchor = anchor
        meta.expires_after.seconds = int(seconds)
    return file_pb2.UploadFileRequest(metadata=meta)


class _Spool:
    """File bytes that came before the fields: memory, then disk, within the size limit."""

    def __init__(self, max_bytes: int) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self._max_bytes = max_bytes
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._max_bytes:
            error = FileLimitError(f"The file is larger than the limit of {self._max_bytes} bytes.")
            raise limit_error(error)
        self._file.write(data)

    def replay(self) -> IO[bytes]:
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()


async def upload_requests(
    request: Request, *, max_file_bytes: int
) -> AsyncGenerator[file_pb2.UploadFileRequest]:
    """The upload stream of a multipart body: metadata, then chunks (at most CHUNK_BYTES)."""
    form = _Form()
    parser = MultipartParser(_boundary(request), form.callbacks())  # type: ignore[arg-type]
    streaming = False  # metadata sent: the file's bytes go straight on
    fixed: dict[str, str] = {}  # the fields the metadata was made of
    spool: _Spool | None = None
    try:
        try:
            async for received in request.stream():
                parser.write(received)
                if not form.file_started:
                    continue
                if not streaming and spool is None:
                    if "purpose" in form.fields:
                        streaming = True
                        yield metadata(form)
                        fixed = dict(form.fields)
                    else:
                        spool = _Spool(max_file_bytes)
                if streaming and form.fields != fixed:
                    late = next(name for name in form.fields if name not in fixed)
                    raise InvalidArgumentError.single(
                        late, "must come before the file part of the form."
                    )
                data = form.take()
                if spool is not None:
                    spool.write(data)
                else:
                    for start in range(0, len(data), CHUNK_BYTES):
                        yield file_pb2.UploadFileRequest(chunk=data[start : start + CHUNK_BYTES])
            parser.finalize()
        except ClientDisconnect:
            raise HttpError(400, "The upload was interrupted before its end.") from None
        except FormParserError:
            raise HttpError(400, "The multipart body cannot be parsed.") from None
        if not form.file_ended:
            raise InvalidArgumentError.single(FILE_FIELD, "required: the form has no file part.")
        if spool is not None:
            yield metadata(form)
            source = spool.replay()
            while data := source.read(CHUNK_BYTES):
                yield file_pb2.UploadFileRequest(chunk=data)
    finally:
        if spool is not None:
            spool.close()


__all__ = ["FILE_FIELD", "FORM_OVERHEAD", "metadata", "upload_requests"]
