"""The HTTP face is admitted exactly as gRPC is: API keys and projects, the same per-key rate
limit and stream slots (counted across both faces), the loopback rule, TLS and mTLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx2
import openai
import pytest

from assistants_grpc.auth.exposure import SecurityConfigError
from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.contract.pb import assistant_pb2, run_pb2
from assistants_grpc.fake_model import FakeModelServer, HangReply
from assistants_grpc.server import AssistantsServer
from tests.conftest import RunningServer, serving, start_server
from tests.http.conftest import SDK_DEPRECATIONS, HttpServer
from tests.security.certificates import Certificates, make_certificates
from tests.security.conftest import Keys, make_keys
from tests.security.helpers import expect_code, stubs

pytestmark = list(SDK_DEPRECATIONS)


@pytest.fixture
async def keyed(
    database_url: str, fake_model: FakeModelServer, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[HttpServer, Keys]]:
    settings = getattr(request, "param", {})
    keys = make_keys(database_url, int(ManualClock().now()))
    async with serving(database_url, fake_model, http=True, **settings) as running:
        yield HttpServer(running), keys


async def test_keys_and_projects(keyed: tuple[HttpServer, Keys]) -> None:
    server, keys = keyed
    async with (
        server.async_client(keys.alpha) as alpha,
        server.async_client(keys.beta) as beta,
        server.async_client(keys.revoked, max_retries=0) as revoked,
        server.async_client("sk-" + "x" * 40, max_retries=0) as unknown,
    ):
        mine = await alpha.beta.assistants.create(model="gpt-4o")
        for refused in (revoked, unknown):
            with pytest.raises(openai.AuthenticationError) as denied:
                await refused.beta.assistants.retrieve(mine.id)
            assert denied.value.status_code == 401
            assert denied.value.message.endswith("Invalid API key.")
            assert denied.value.code == "invalid_api_key"
        # Another project's id reads exactly like one that never existed.
        with pytest.raises(openai.NotFoundError) as hidden:
            await beta.beta.assistants.retrieve(mine.id)
        assert hidden.value.message.endswith(f"No assistant found with id '{mine.id}'.")
        assert [a.id async for a in beta.beta.assistants.list()] == []
    async with server.raw() as raw:
        assert (await raw.get("/assistants")).status_code == 401  # no key at all
        malformed = await raw.get("/assistants", headers={"authorization": "Basic abc"})
        assert malformed.status_code == 401
        twice = await raw.get(
            "/assistants",
            headers=[("authorization", f"Bearer {keys.alpha}"), ("authorization", "Bearer x")],
        )
        assert twice.status_code == 401


async def test_files_and_vector_stores_keep_to_their_project(
    keyed: tuple[HttpServer, Keys],
) -> None:
    server, keys = keyed
    async with (
        server.async_client(keys.alpha) as alpha,
        server.async_client(keys.beta) as beta,
    ):
        file = await alpha.files.create(file=("mine.md", b"# mine\n"), purpose="assistants")
        store = await alpha.vector_stores.create(name="mine", file_ids=[file.id])
        for hidden in (
            beta.files.retrieve(file.id),
            beta.files.content(file.id),
            beta.files.delete(file.id),
            beta.vector_stores.retrieve(store.id),
            beta.vector_stores.files.list(store.id),
            beta.vector_stores.search(store.id, query="mine"),
        ):
            with pytest.raises(openai.NotFoundError):
                await hidden
        assert [f.id async for f in beta.files.list()] == []
        assert [s.id async for s in beta.vector_stores.list()] == []
        # A File of another project cannot be put in one's own store either.
        theirs = await beta.vector_stores.create(name="theirs")
        with pytest.raises(openai.NotFoundError):
            await beta.vector_stores.files.create(vector_store_id=theirs.id, file_id=file.id)
        assert (await alpha.files.retrieve(file.id)).id == file.id
    async with server.raw() as raw:
        anonymous = await raw.post(
            "/files", data={"purpose": "assistants"}, files={"file": ("x.md", b"x")}
        )
        assert anonymous.status_code == 401
    async with server.async_client(keys.alpha) as alpha:
        assert [f.filename async for f in alpha.files.list()] == ["mine.md"]


@pytest.mark.parametrize(
    "keyed", [{"rate_limit_per_second": 0.01, "rate_limit_burst": 3}], indirect=True
)
async def test_one_rate_limit_for_both_faces(keyed: tuple[HttpServer, Keys]) -> None:
    server, keys = keyed
    grpc_stubs = stubs(server.running.target, keys.alpha)
    try:
        await grpc_stubs.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
        async with server.async_client(keys.alpha, max_retries=0) as client:
            await client.beta.assistants.list()
            await client.beta.assistants.list()
            with pytest.raises(openai.RateLimitError) as limited:
                await client.beta.assistants.list()
            assert limited.value.status_code == 429
            wait_ms = int(limited.value.response.headers["retry-after-ms"])
            assert 0 < wait_ms <= 100_000
            assert limited.value.code == "rate_limit_exceeded"
        await expect_code(
            grpc_stubs.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest()),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
    finally:
        await grpc_stubs.channel.close()


@pytest.mark.parametrize("keyed", [{"max_streams_per_key": 1}], indirect=True)
async def test_one_set_of_stream_slots_for_both_faces(keyed: tuple[HttpServer, Keys]) -> None:
    server, keys = keyed
    server.running.model.push(HangReply(60))
    headers = {"authorization": f"Bearer {keys.alpha}"}
    grpc_stubs = stubs(server.running.target, keys.alpha)
    try:
        async with httpx2.AsyncClient(base_url=server.base_url, headers=headers) as raw:
            assistant = (await raw.post("/assistants", json={"model": "gpt-4o"})).json()
            thread = (
                await raw.post("/threads", json={"messages": [{"role": "user", "content": "x"}]})
            ).json()
            body = {"assistant_id": assistant["id"], "stream": True}
            async with raw.stream("POST", f"/threads/{thread['id']}/runs", json=body) as open_:
                assert open_.status_code == 200
                # Kept, so the reader stays open (a dropped one closes the connection).
                chunks = open_.aiter_text()
                async for chunk in chunks:
                    if "thread.run.created" in chunk:
                        break
                run_id = (await raw.get(f"/threads/{thread['id']}/runs")).json()["data"][0]["id"]
                second = await raw.post("/threads/runs", json=body)
                assert second.status_code == 429
                assert "Too many open streams" in second.json()["error"]["message"]
                watch = run_pb2.WatchRunRequest(thread_id=thread["id"], run_id=run_id)
                await expect_code(
                    _drain(grpc_stubs.runs.WatchRun(watch)), grpc.StatusCode.RESOURCE_EXHAUSTED
                )
            # Closed: the slot is free again at once (the model still hangs for a minute).
            for _ in range(250):
                if server.face.open_streams == 0:
                    break
                await asyncio.sleep(0.02)
            again = await raw.post("/threads/runs", json={**body, "stream": False})
            assert again.status_code == 200
            watched = grpc_stubs.runs.WatchRun(watch)
            first = await watched.read()
            assert first.event == "thread.run.created"  # the gRPC face got the slot
            watched.cancel()
            await raw.post(f"/threads/{thread['id']}/runs/{run_id}/cancel")
    finally:
        await grpc_stubs.channel.close()


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass


async def test_an_exposed_http_address_needs_keys(tmp_path: Path) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        http_host="0.0.0.0",
        http_port=0,
        metrics_port=0,
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
    )
    server = AssistantsServer(settings, http=True)
    try:
        with pytest.raises(SecurityConfigError, match=r"refusing to listen on 0\.0\.0\.0"):
            await server.start()
        assert not server.runtime.started
    finally:
        await server.stop(0)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.mark.parametrize("mutual", [False, True])
async def test_tls_with_the_same_certificate_flags(
    tmp_path: Path, fake_model: FakeModelServer, certificates: Certificates, mutual: bool
) -> None:
    server = await start_server(
        f"sqlite:///{tmp_path / 'tls.db'}",
        ManualClock(),
        fake_model,
        http=True,
        auth="disabled",
        tls_cert=str(certificates.server_cert),
        tls_key=str(certificates.server_key),
        tls_client_ca=str(certificates.ca) if mutual else None,
    )
    base = f"https://127.0.0.1:{server.http_port}/v1"
    trust = ssl.create_default_context(cafile=str(certificates.ca))
    with_cert = ssl.create_default_context(cafile=str(certificates.ca))
    with_cert.load_cert_chain(str(certificates.client_cert), str(certificates.client_key))
    try:
        async with openai.AsyncOpenAI(
            base_url=base,
            api_key="sk-none",
            max_retries=0,
            http_client=httpx2.AsyncClient(verify=with_cert if mutual else trust),
        ) as client:
            assert (await client.beta.assistants.create(model="gpt-4o")).id.startswith("asst_")
        async with httpx2.AsyncClient(base_url=base, verify=False) as plain:
            if mutual:  # no client certificate: the handshake itself is refused
                with pytest.raises(httpx2.HTTPError):
                    await plain.get("/assistants")
            else:
                assert (await plain.get("/assistants")).status_code == 200
        async with httpx2.AsyncClient(
            base_url=f"http://127.0.0.1:{server.http_port}/v1"
        ) as cleartext:
            with pytest.raises(httpx2.HTTPError):
                await cleartext.get("/assistants")
    finally:
        await server.stop(0)


async def test_test_servers_serve_no_http_unless_asked(running: RunningServer) -> None:
    assert running.server.http_port == 0 and running.server.http_face is None
