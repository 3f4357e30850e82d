"""A real server with both faces on free ports, the fake model behind it, and the official
`openai` SDK pointed at its HTTP face.

The SDK marks every `beta.*` call deprecated; `SDK_DEPRECATIONS` filters exactly those two
warnings (warnings stay errors otherwise). The sync client is driven on a thread
(`asyncio.to_thread`), since the server runs on the test's own event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2
import openai
import pytest

from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.http.face import HttpFace
from tests.conftest import RunningServer, serving

SDK_DEPRECATIONS = (
    pytest.mark.filterwarnings("ignore:deprecated$:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:The Assistants API is deprecated in favor of the Responses API:DeprecationWarning"
    ),
)


@dataclass
class HttpServer:
    running: RunningServer

    @property
    def face(self) -> HttpFace:
        face = self.running.server.http_face
        assert face is not None
        return face

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.running.server.http_port}/v1"

    def sync_client(self, api_key: str = "sk-none", *, max_retries: int = 2) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=max_retries)

    def async_client(self, api_key: str = "sk-none", *, max_retries: int = 2) -> openai.AsyncOpenAI:
        """The SDK's client with its default retries: what is retried shows."""
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=max_retries)

    def raw(self) -> httpx2.AsyncClient:
        """A plain HTTP client on the face, for what the SDK never sends."""
        return httpx2.AsyncClient(base_url=self.base_url, timeout=30)


@pytest.fixture
async def http_server(database_url: str, fake_model: FakeModelServer) -> AsyncIterator[HttpServer]:
    """Both faces, authentication off (`--auth disabled`: the SDK always sends a key)."""
    async with serving(database_url, fake_model, http=True, auth="disabled") as running:
        yield HttpServer(running)


@pytest.fixture
async def client(http_server: HttpServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with http_server.async_client() as made:
        yield made
