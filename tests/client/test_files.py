"""`client.files`, blocking and asyncio, against a real server (SQLite, and PostgreSQL when
configured)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from assistants_grpc_client import AsyncClient, Client, InvalidArgumentError, NotFoundError
from assistants_grpc_client.v1 import file_pb2

from tests.client.conftest import in_thread
from tests.conftest import RunningServer

F = file_pb2
DATA = bytes(range(256)) * 9000  # 2.3 MB: three chunks of 1 MiB


async def test_upload_from_a_path_bytes_and_a_file_object(
    running: RunningServer, client: Client, tmp_path: Path
) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(DATA)

    def flow() -> None:
        from_path = client.files.upload(source, purpose="assistants")
        assert from_path.filename == "report.bin" and from_path.bytes == len(DATA)
        assert from_path.purpose == F.FILE_PURPOSE_ASSISTANTS
        from_str = client.files.upload(str(source), purpose="user_data", chunk_size=1000)
        assert from_str.purpose == F.FILE_PURPOSE_USER_DATA
        from_bytes = client.files.upload(b"hello", purpose="vision", filename="dir/hi.txt")
        assert from_bytes.filename == "hi.txt"
        with source.open("rb") as handle:
            handle.seek(10)  # read from where it stands
            from_handle = client.files.upload(handle, purpose=F.FILE_PURPOSE_ASSISTANTS)
        assert from_handle.filename == "report.bin" and from_handle.bytes == len(DATA) - 10
        unnamed = client.files.upload(io.BytesIO(b"abc"), purpose="assistants", filename="x.md")
        assert unnamed.bytes == 3
        expiring = client.files.upload(
            b"soon",
            purpose="assistants",
            filename="t.txt",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
        assert expiring.expires_at == expiring.created_at + 3600

        assert client.files.content(from_path.id) == DATA
        assert client.files.content(from_str.id) == DATA
        assert client.files.content(from_handle.id) == DATA[10:]
        chunks = list(client.files.iter_content(from_path.id))
        assert b"".join(chunks) == DATA and len(chunks) == 3
        written = client.files.download(from_bytes.id, tmp_path / "copy.txt")
        assert written.read_bytes() == b"hello"
        assert client.files.retrieve(from_path.id) == from_path

        with pytest.raises(TypeError, match="filename"):
            client.files.upload(b"no name", purpose="assistants")

    await in_thread(flow)


async def test_list_delete_and_errors(client: Client, tmp_path: Path) -> None:
    def flow() -> None:
        made = [
            client.files.upload(
                f"file {i}".encode(),
                purpose="assistants" if i % 2 else "vision",
                filename=f"f{i}.txt",
            )
            for i in range(5)
        ]
        # Auto-paging: iterating a page of 2 goes on through every page.
        assert [f.id for f in client.files.list(limit=2, order="asc")] == [f.id for f in made]
        first = client.files.list(limit=2)
        assert len(first.data) == 2 and first.has_more
        vision = [f.id for f in client.files.list(purpose="vision")]
        assert vision == [f.id for f in reversed(made) if f.purpose == F.FILE_PURPOSE_VISION]

        deleted = client.files.delete(made[0].id)
        assert deleted.id == made[0].id and deleted.deleted
        for call in (
            lambda: client.files.retrieve(made[0].id),
            lambda: client.files.content(made[0].id),
            lambda: client.files.delete(made[0].id),
        ):
            with pytest.raises(NotFoundError):
                call()
        target = tmp_path / "never.txt"
        with pytest.raises(NotFoundError):
            client.files.download(made[0].id, target)
        assert not target.exists()

        with pytest.raises(InvalidArgumentError) as caught:
            client.files.upload(b"x", purpose="assistants_output", filename="x")
        assert [v.field for v in caught.value.field_violations] == ["purpose"]
        with pytest.raises(InvalidArgumentError) as caught:
            client.files.upload(
                b"x", purpose="assistants", filename="x", expires_after={"seconds": 10}
            )
        assert [v.field for v in caught.value.field_violations] == ["expires_after.seconds"]
        with pytest.raises(ValueError, match="purpose"):
            client.files.upload(b"x", purpose="fine-tune", filename="x")  # type: ignore[arg-type]

    await in_thread(flow)


async def test_async_files(aclient: AsyncClient, tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(DATA)
    uploaded = await aclient.files.upload(source, purpose="assistants")
    small = await aclient.files.upload(b"tiny", purpose="user_data", filename="tiny.txt")
    assert uploaded.bytes == len(DATA) and uploaded.filename == "a.bin"
    assert await aclient.files.retrieve(uploaded.id) == uploaded
    assert await aclient.files.content(uploaded.id) == DATA
    assert b"".join([c async for c in aclient.files.iter_content(uploaded.id)]) == DATA
    copy = await aclient.files.download(small.id, tmp_path / "tiny-copy.txt")
    assert copy.read_bytes() == b"tiny"
    page = await aclient.files.list(limit=1)
    assert [f.id for f in page.data] == [small.id] and page.has_more
    assert [f.id async for f in aclient.files.list(limit=1, order="asc")] == [
        uploaded.id,
        small.id,
    ]
    assert [f.id async for f in aclient.files.list(purpose="user_data")] == [small.id]
    assert (await aclient.files.delete(small.id)).deleted
    with pytest.raises(NotFoundError):
        await aclient.files.content(small.id)
    with pytest.raises(NotFoundError):
        await aclient.files.retrieve(small.id)
