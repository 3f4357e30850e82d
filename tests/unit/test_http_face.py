"""The HTTP face's pieces without a server: the status of every error code, the query string
and the body read into the request protos, the beta header, the route table."""

from __future__ import annotations

import pytest

from assistants_grpc.contract.pb import assistant_pb2, message_pb2, run_pb2
from assistants_grpc.http.app import PREFIX, build_app
from assistants_grpc.http.errors import STATUS, HttpError
from assistants_grpc.http.requests import build, check_beta, request_headers, stream_flag
from assistants_grpc.http.routes import ROUTES
from assistants_grpc.services.errors import ErrorCode, InvalidArgumentError


def test_every_error_code_has_a_status_and_conflicts_are_400() -> None:
    assert set(STATUS) == set(ErrorCode)
    assert STATUS[ErrorCode.FAILED_PRECONDITION] == 400  # never 409, which the SDK retries
    assert STATUS[ErrorCode.NOT_FOUND] == 404
    assert STATUS[ErrorCode.UNAUTHENTICATED] == 401
    assert STATUS[ErrorCode.RESOURCE_EXHAUSTED] == 429
    assert STATUS[ErrorCode.UNAVAILABLE] == 503


def test_repeated_headers_join_so_two_keys_are_malformed() -> None:
    headers = request_headers([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")])
    assert headers == {"authorization": "Bearer a, Bearer b"}


@pytest.mark.parametrize("value", ["assistants=v2", "ASSISTANTS=V2", "other=x, assistants=v2"])
def test_the_v2_beta_header_passes(value: str) -> None:
    check_beta({"openai-beta": value})
    check_beta({})


@pytest.mark.parametrize("value", ["assistants=v1", "assistants=v3", "assistants"])
def test_other_assistants_versions_are_refused(value: str) -> None:
    with pytest.raises(HttpError) as refused:
        check_beta({"openai-beta": value})
    assert (refused.value.status, refused.value.code) == (400, "invalid_beta")


def test_a_request_is_the_body_the_query_and_the_path() -> None:
    request = build(
        run_pb2.CreateRunRequest,
        {"assistant_id": "asst_a", "additional_messages": [{"role": "user", "content": "hi"}]},
        {"thread_id": "thread_t"},
        {"include": ["step_details.tool_calls[*].file_search.results[*].content"]},
        frozenset({"thread_id", "include"}),
    )
    assert request.thread_id == "thread_t" and request.assistant_id == "asst_a"
    assert request.additional_messages[0].content[0].text == "hi"
    assert list(request.include) == ["step_details.tool_calls[*].file_search.results[*].content"]
    empty = build(
        run_pb2.CancelRunRequest, None, {"thread_id": "t", "run_id": "r"}, {}, frozenset()
    )
    assert (empty.thread_id, empty.run_id) == ("t", "r")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": 5}, "model"),
        ({"model": "m", "tools": [{"type": "nope"}]}, "tools[0].type"),
        ({"model": "m", "metadata": {"k": 1}}, "metadata.k"),
        ({"model": "m", "assistant_id": "x"}, "assistant_id"),
        ({"model": "m", "unknown": 1}, "unknown"),
        ([1], "body"),
    ],
)
def test_what_does_not_fit_names_its_path(body: object, param: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        build(
            assistant_pb2.CreateAssistantRequest,
            body,
            {},
            {},
            frozenset({"assistant_id"}),
        )
    assert refused.value.describe().param == param


def test_the_stream_flag_is_the_faces() -> None:
    body: dict[str, object] = {"assistant_id": "a", "stream": True}
    assert stream_flag(body) and body == {"assistant_id": "a"}
    assert not stream_flag({"stream": None}) and not stream_flag(None)
    with pytest.raises(InvalidArgumentError):
        stream_flag({"stream": 1})


def test_create_thread_and_run_is_routed_before_a_thread() -> None:
    paths = [route.path for route in ROUTES]
    assert paths.index("/threads/runs") < paths.index("/threads/{thread_id}")
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES) == 44
    assert PREFIX == "/v1"


def test_a_path_routed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="routed twice"):
        build_app(None, [*ROUTES, ROUTES[0]])  # type: ignore[arg-type]


def test_a_message_list_takes_run_id_from_the_query() -> None:
    request = build(
        message_pb2.ListMessagesRequest,
        None,
        {"thread_id": "thread_t"},
        {"run_id": "run_r", "limit": 5, "order": "asc"},
        frozenset({"thread_id", "run_id", "limit", "order"}),
    )
    assert (request.run_id, request.limit, request.order) == ("run_r", 5, 1)


def test_file_limits_are_413_and_400_never_a_retried_429() -> None:
    from assistants_grpc.files.storage import FileLimitError
    from assistants_grpc.http.errors import described_envelope, status_of
    from assistants_grpc.services.files import limit_error

    too_big = limit_error(FileLimitError("too big")).describe()
    over_quota = limit_error(FileLimitError("no room", quota=True)).describe()
    assert too_big.code == over_quota.code == ErrorCode.RESOURCE_EXHAUSTED  # gRPC's code
    assert (status_of(too_big), status_of(over_quota)) == (413, 400)
    assert described_envelope(too_big)["error"] == {
        "message": "too big",
        "type": "invalid_request_error",
        "param": None,
        "code": "file_too_large",
    }
    assert described_envelope(over_quota)["error"]["code"] == "storage_quota_exceeded"  # type: ignore[index]


def test_a_search_query_may_be_one_string_or_a_list() -> None:
    from assistants_grpc.contract.pb import vector_store_pb2

    reserved = frozenset({"vector_store_id"})
    path = {"vector_store_id": "vs_v"}
    one = build(vector_store_pb2.SearchVectorStoreRequest, {"query": "q"}, path, {}, reserved)
    several = build(
        vector_store_pb2.SearchVectorStoreRequest, {"query": ["a", "b"]}, path, {}, reserved
    )
    assert (list(one.query), list(several.query)) == (["q"], ["a", "b"])
    with pytest.raises(InvalidArgumentError) as bad:
        build(vector_store_pb2.SearchVectorStoreRequest, {"query": 3}, path, {}, reserved)
    assert bad.value.violations[0].field == "query"


def test_only_the_upload_reads_its_own_body() -> None:
    own = {(r.method, r.path) for r in ROUTES if r.own_body}
    assert own == {("POST", "/files")}
