"""Constructing clients: TLS through `credentials`, the API key as metadata, closing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from assistants_grpc_client import AsyncClient, Client

from tests.client.conftest import in_thread
from tests.client.scripted import ScriptedServer


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A self-signed certificate for `localhost` and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder: Path = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
    subprocess.run(
        [
            *command.split(),
            *("-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert.read_bytes(), key.read_bytes()


async def test_tls_with_credentials(certificate: tuple[bytes, bytes]) -> None:
    cert, key = certificate
    server_credentials = grpc.ssl_server_credentials([(key, cert)])
    async with ScriptedServer(server_credentials) as server:
        trusted = grpc.ssl_channel_credentials(root_certificates=cert)
        async with AsyncClient(server.target, credentials=trusted, api_key="sk-tls") as client:
            assert (await client.assistants.retrieve("asst_1")).id == "asst_1"

        def blocking() -> None:
            with Client(server.target, credentials=trusted, api_key="sk-tls") as client:
                assert client.assistants.retrieve("asst_2").id == "asst_2"

        await in_thread(blocking)
        assert [meta["authorization"] for _, meta in server.script.calls] == ["Bearer sk-tls"] * 2

        # A plaintext client cannot talk to the TLS server.
        async with AsyncClient(server.target, max_retries=0, timeout=2) as plain:
            with pytest.raises(Exception):  # noqa: B017 - UNAVAILABLE, from the handshake
                await plain.assistants.retrieve("asst_3")


async def test_closing() -> None:
    async with ScriptedServer() as server:
        client = AsyncClient(server.target)
        assert repr(client) == f"AsyncClient({server.target!r})"
        await client.assistants.retrieve("asst_1")
        await client.close()
        with pytest.raises(Exception):  # noqa: B017 - grpc refuses calls on a closed channel
            await client.assistants.retrieve("asst_1")

        def blocking() -> None:
            with Client(server.target) as sync:
                sync.assistants.retrieve("asst_1")
            with pytest.raises(ValueError, match="closed channel"):
                sync.assistants.retrieve("asst_1")

        await in_thread(blocking)
