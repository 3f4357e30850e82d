"""TLS and mTLS with certificates made for the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import assistant_pb2, assistant_pb2_grpc
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.server import AssistantsServer
from tests.conftest import start_server
from tests.security.certificates import Certificates, make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
async def tls_server(
    tmp_path: Path,
    fake_model: FakeModelServer,
    certificates: Certificates,
    request: pytest.FixtureRequest,
) -> AsyncIterator[AssistantsServer]:
    mutual = getattr(request, "param", False)
    server = await start_server(
        f"sqlite:///{tmp_path / 'tls.db'}",
        ManualClock(),
        fake_model,
        tls_cert=str(certificates.server_cert),
        tls_key=str(certificates.server_key),
        tls_client_ca=str(certificates.ca) if mutual else None,
    )
    try:
        yield server
    finally:
        await server.stop(0)


def _credentials(
    certificates: Certificates, *, client: tuple[Path, Path] | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=certificates.ca.read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None,
    )


async def _create(channel: grpc.aio.Channel) -> assistant_pb2.Assistant:
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    return await stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="m"), timeout=10)


async def test_tls(tls_server: AssistantsServer, certificates: Certificates) -> None:
    target = f"127.0.0.1:{tls_server.port}"
    async with grpc.aio.secure_channel(target, _credentials(certificates)) as channel:
        assert (await _create(channel)).id.startswith("asst_")
    # The same name the certificate carries.
    async with grpc.aio.secure_channel(
        f"localhost:{tls_server.port}", _credentials(certificates)
    ) as channel:
        await _create(channel)
    # Plaintext gets nowhere.
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _create(channel)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("tls_server", [True], indirect=True)
async def test_mutual_tls(tls_server: AssistantsServer, certificates: Certificates) -> None:
    target = f"127.0.0.1:{tls_server.port}"
    client = (certificates.client_cert, certificates.client_key)
    async with grpc.aio.secure_channel(
        target, _credentials(certificates, client=client)
    ) as channel:
        assert (await _create(channel)).id.startswith("asst_")
    intruder = (certificates.other_client_cert, certificates.other_client_key)
    for credentials in (_credentials(certificates), _credentials(certificates, client=intruder)):
        async with grpc.aio.secure_channel(target, credentials) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _create(channel)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
