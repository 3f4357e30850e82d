"""What the SDK needs on the wire, checked with a plain HTTP client: routing, OpenAI's error
envelope and statuses, the beta header, the size limit, the query string, SSE framing, errors
after the 200, keep-alives, disconnects and the poll hint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from assistants_grpc.fake_model import FakeModelServer, HangReply
from assistants_grpc.http.errors import BETA_V1
from tests.conftest import serving
from tests.http.conftest import HttpServer

BETA = {"OpenAI-Beta": "assistants=v2"}


async def _assistant(raw: httpx2.AsyncClient, **fields: Any) -> dict[str, Any]:
    answer = await raw.post("/assistants", json={"model": "gpt-4o", **fields}, headers=BETA)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _thread(raw: httpx2.AsyncClient, text: str) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": text}]}
    answer = await raw.post("/threads", json=body, headers=BETA)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _frames(text: str) -> list[tuple[str, str]]:
    """(event, data) of every SSE frame, in order; comments are kept as ("", ": …")."""
    frames = []
    for block in text.split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            frames.append(("", block))
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        frames.append((lines["event"], lines["data"]))
    return frames


def _error(answer: httpx2.Response) -> dict[str, Any]:
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"].startswith("req_")
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


async def test_unknown_routes_are_openais_404(http_server: HttpServer) -> None:
    async with http_server.raw() as raw:
        for method, path in [
            ("GET", "/nothing"),
            ("PUT", "/assistants"),
            ("PATCH", "/threads/thread_x"),
            ("GET", "/threads/thread_x/runs/run_x/cancel"),
            ("GET", "/assistants/"),
        ]:
            answer = await raw.request(method, path)
            assert answer.status_code == 404, (method, path)
            error = _error(answer)
            assert error["message"] == f"Invalid URL ({method} /v1{path})"
            assert error["type"] == "invalid_request_error"
        outside = await raw.get(f"http://127.0.0.1:{http_server.running.server.http_port}/x")
        assert outside.status_code == 404


async def test_threads_runs_is_create_thread_and_run(http_server: HttpServer) -> None:
    async with http_server.raw() as raw:
        assistant = await _assistant(raw)
        answer = await raw.post("/threads/runs", json={"assistant_id": assistant["id"]})
        assert answer.status_code == 200, answer.text
        run = answer.json()
        assert run["object"] == "thread.run" and run["thread_id"].startswith("thread_")


async def test_bodies_that_are_not_requests(http_server: HttpServer) -> None:
    async with http_server.raw() as raw:
        broken = await raw.post(
            "/assistants", content=b'{"model": ', headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400
        assert "could not parse the JSON body" in _error(broken)["message"]
        for content in (b"[1, 2]", b'"text"', b'{"model": NaN}', b"\xff\xfe"):
            answer = await raw.post("/assistants", content=content)
            assert answer.status_code == 400, content
            _error(answer)
        missing = await raw.post("/assistants", json={})
        assert missing.status_code == 400 and _error(missing)["param"] == "model"
        nested = await raw.post("/assistants", json={"model": "m", "tools": [{"type": "nope"}]})
        assert nested.status_code == 400 and _error(nested)["param"] == "tools[0].type"
        # Path and query names belong to the URL.
        thread = await _thread(raw, "hi")
        smuggled = await raw.post(
            f"/threads/{thread['id']}/messages",
            json={"role": "user", "content": "x", "thread_id": "thread_other"},
        )
        assert smuggled.status_code == 400 and _error(smuggled)["param"] == "thread_id"
        stream = await raw.post("/threads/runs", json={"assistant_id": "a", "stream": "yes"})
        assert stream.status_code == 400 and _error(stream)["param"] == "stream"


async def test_the_beta_header(http_server: HttpServer) -> None:
    async with http_server.raw() as raw:
        assert (await raw.get("/assistants")).status_code == 200  # absent: fine
        assert (await raw.get("/assistants", headers=BETA)).status_code == 200
        old = await raw.get("/assistants", headers={"OpenAI-Beta": "assistants=v1"})
        assert old.status_code == 400
        error = _error(old)
        assert (error["message"], error["code"]) == (BETA_V1, "invalid_beta")


async def test_query_parameters(http_server: HttpServer) -> None:
    async with http_server.raw() as raw:
        for i in range(3):
            await _assistant(raw, name=f"q{i}")
        page = (await raw.get("/assistants", params={"limit": "2", "order": "asc"})).json()
        assert page["object"] == "list" and len(page["data"]) == 2 and page["has_more"]
        assert [a["name"] for a in page["data"]] == ["q0", "q1"]
        for params, param in [
            ({"limit": "two"}, "limit"),
            ({"limit": "0"}, "limit"),
            ({"order": "sideways"}, "order"),
            ({"colour": "red"}, "colour"),
            ({"limit": ["1", "2"]}, "limit"),
        ]:
            answer = await raw.get("/assistants", params=params)
            assert answer.status_code == 400, params
            assert _error(answer)["param"] == param
        # include[] arrives bracket-encoded; a value it cannot be names its position.
        thread = await _thread(raw, "hi")
        assistant = await _assistant(raw)
        bogus = await raw.post(
            f"/threads/{thread['id']}/runs",
            params={"include[]": "everything"},
            json={"assistant_id": assistant["id"]},
        )
        assert bogus.status_code == 400 and _error(bogus)["param"] == "include[0]"


async def test_a_body_over_the_limit_is_413(database_url: str, fake_model: FakeModelServer) -> None:
    async with serving(
        database_url, fake_model, http=True, auth="disabled", max_request_bytes=2000
    ) as running:
        base = f"http://127.0.0.1:{running.server.http_port}/v1"
        async with httpx2.AsyncClient(base_url=base) as raw:
            big = {"model": "gpt-4o", "instructions": "x" * 5000}
            declared = await raw.post("/assistants", json=big)
            assert declared.status_code == 413 and _error(declared)["code"] == "request_too_large"

            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"model": "gpt-4o", "instructions": "'
                for _ in range(10):
                    yield b"y" * 500
                yield b'"}'

            chunked = await raw.post("/assistants", content=chunks())
            assert chunked.status_code == 413
            assert (await raw.post("/assistants", json={"model": "small"})).status_code == 200


async def test_a_stream_is_sse_frames_ending_with_done(http_server: HttpServer) -> None:
    async with http_server.raw() as raw:
        assistant = await _assistant(raw)
        thread = await _thread(raw, "Stream this")
        answer = await raw.post(
            f"/threads/{thread['id']}/runs",
            json={"assistant_id": assistant["id"], "stream": True},
            headers={**BETA, "accept": "application/json"},  # what the SDK sends
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert answer.headers["x-request-id"].startswith("req_")
        assert answer.text.endswith("event: done\ndata: [DONE]\n\n")
        frames = _frames(answer.text)
        assert frames[0][0] == "thread.run.created" and frames[-2][0] == "thread.run.completed"
        for name, data in frames[:-1]:
            assert json.loads(data)["object"] in (
                "thread.run",
                "thread.run.step",
                "thread.message",
                "thread.message.delta",
            ), name
        deltas = [json.loads(d) for n, d in frames if n == "thread.message.delta"]
        text = "".join(p["text"]["value"] for d in deltas for p in d["delta"]["content"])
        assert text == "You said: Stream this"


async def test_an_error_after_the_200_is_an_error_event(http_server: HttpServer) -> None:
    http_server.running.model.push(HangReply(30))
    async with http_server.raw() as raw:
        assistant = await _assistant(raw)
        thread = await _thread(raw, "wait")
        seen: list[tuple[str, str]] = []
        async with raw.stream(
            "POST",
            f"/threads/{thread['id']}/runs",
            json={"assistant_id": assistant["id"], "stream": True},
        ) as answer:
            assert answer.status_code == 200
            buffer = ""
            async for chunk in answer.aiter_text():
                buffer += chunk
                if "thread.run.in_progress" in buffer and not seen:
                    seen.append(("", "deleting"))
                    async with http_server.raw() as other:
                        deleted = await other.delete(f"/threads/{thread['id']}")
                        assert deleted.status_code == 200
        frames = _frames(buffer)
        assert frames[-1] == ("done", "[DONE]")
        name, data = frames[-2]
        assert name == "error"
        error = json.loads(data)["error"]
        assert error["message"] == f"The thread '{thread['id']}' was deleted."
        assert error["type"] == "invalid_request_error"


async def test_a_silent_stream_sends_keep_alives(http_server: HttpServer) -> None:
    http_server.face.keepalive = 0.05
    http_server.running.model.push(HangReply(0.5, text="Finally."))
    async with http_server.raw() as raw:
        assistant = await _assistant(raw)
        thread = await _thread(raw, "slowly")
        answer = await raw.post(
            f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"], "stream": True}
        )
        frames = _frames(answer.text)
        keep_alives = [f for f in frames if f == ("", ": keep-alive")]
        assert len(keep_alives) >= 2, frames
        assert frames[-1] == ("done", "[DONE]") and frames[-2][0] == "thread.run.completed"


async def test_a_client_that_goes_away_frees_its_stream_at_once(
    http_server: HttpServer,
) -> None:
    http_server.running.model.push(HangReply(60))
    bus = http_server.running.server.runtime.bus
    async with http_server.raw() as raw:
        assistant = await _assistant(raw)
        thread = await _thread(raw, "then leave")
        buffer = ""
        async with raw.stream(
            "POST",
            f"/threads/{thread['id']}/runs",
            json={"assistant_id": assistant["id"], "stream": True},
        ) as answer:
            async for chunk in answer.aiter_text():
                buffer += chunk
                if "thread.run.in_progress" in buffer:
                    break
            run_id = json.loads(_frames(buffer)[0][1])["id"]
            assert http_server.face.open_streams == 1
            assert bus._channels[run_id].subscribers == 1
        # The connection is closed here: the stream ends now, not after the model's 60 s nor
        # the 15 s keep-alive.
        for _ in range(250):
            if http_server.face.open_streams == 0:
                break
            await asyncio.sleep(0.02)
        assert http_server.face.open_streams == 0
        assert bus._channels[run_id].subscribers == 0
        run = (await raw.get(f"/threads/{thread['id']}/runs/{run_id}")).json()
        # Nobody follows it any more; the run itself goes on (a disconnect is no cancel).
        assert run["status"] == "in_progress"
        await raw.post(f"/threads/{thread['id']}/runs/{run_id}/cancel")


async def test_get_run_tells_the_poller_when_to_come_back(http_server: HttpServer) -> None:
    async with http_server.raw() as raw:
        assistant = await _assistant(raw)
        run = (await raw.post("/threads/runs", json={"assistant_id": assistant["id"]})).json()
        answer = await raw.get(f"/threads/{run['thread_id']}/runs/{run['id']}")
        assert 100 <= int(answer.headers["openai-poll-after-ms"]) <= 250
        listed = await raw.get(f"/threads/{run['thread_id']}/runs")
        assert "openai-poll-after-ms" not in listed.headers


async def test_health_follows_the_runtime(http_server: HttpServer) -> None:
    base = f"http://127.0.0.1:{http_server.running.server.http_port}"
    async with httpx2.AsyncClient(base_url=base) as raw:
        assert (await raw.get("/health")).json() == {"status": "SERVING"}
        await http_server.running.server.runtime.set_serving(False)
        answer = await raw.get("/health")
        assert (answer.status_code, answer.json()) == (503, {"status": "NOT_SERVING"})
        await http_server.running.server.runtime.set_serving(True)


@pytest.mark.parametrize("method", ["POST", "DELETE", "GET"])
def test_a_server_error_is_never_retried_for_writes(method: str) -> None:
    from assistants_grpc.http.errors import error_response
    from assistants_grpc.services.errors import describe

    answer = error_response(describe(RuntimeError("boom")), method, {"x-request-id": "req_1"})
    body = json.loads(bytes(answer.body))
    assert answer.status_code == 500 and body["error"]["type"] == "server_error"
    assert "boom" not in json.dumps(body)
    assert answer.headers.get("x-should-retry") == ("false" if method != "GET" else None)
