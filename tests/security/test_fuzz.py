"""Property-based fuzz of every RPC: random and hostile requests never crash the server, never
get INTERNAL or UNKNOWN, and leave a database that lists and reads back consistently.

One server process serves the whole fuzz (hypothesis drives it with blocking calls). Each case
is one call with a random key: mostly the fuzzing project's, also another project's, a revoked
one, none, a malformed header. Half the typed requests are fully random,
half a valid request with a few fields made hostile; raw request bytes that do not parse come on
top. The outcome counts by status code are printed at the end (`pytest -s` shows them).
`ASSISTANTS_FUZZ_CASES` sets the typed cases on SQLite (PostgreSQL gets 30% of them).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistants_grpc.server import SERVICE_NAMES
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.security import fuzz_checks
from tests.security.fuzz_seed import Project, id_pool, make_keys, seed, templates
from tests.security.fuzz_server import ServerProcess
from tests.security.fuzz_strategies import messages, mutations, raw_payloads

FUZZ_CASES = int(os.environ.get("ASSISTANTS_FUZZ_CASES", "5040"))
POSTGRES_SHARE = 0.3
RAW_CASES_PER_RPC = 12
# Never an answer to input the server was sent: a crash, a bug, or a server that went away.
FORBIDDEN = {"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS", "UNIMPLEMENTED"}
STREAM_WAIT = 1.0  # a stream that says nothing this long is open and waiting: fine
UNARY_TIMEOUT = 30.0
# Who calls: mostly the fuzzing project alpha; beta's objects may change under beta's key,
# gamma's key is never used (its objects must come out exactly as they went in).
WHO = st.sampled_from(["alpha"] * 6 + ["beta", "none", "revoked", "malformed"])


@dataclass(frozen=True)
class Rpc:
    name: str  # the method's name
    path: str  # /assistants.v1.Service/Method
    request: type[Any]
    response: type[Any]
    streaming: bool
    uploading: bool  # client streaming: the request is a list of messages


def _rpcs() -> list[Rpc]:
    found = []
    for service_name in SERVICE_NAMES:
        service = descriptor_pool.Default().FindServiceByName(service_name)
        for method in service.methods:
            found.append(
                Rpc(
                    method.name,
                    f"/{service.full_name}/{method.name}",
                    message_factory.GetMessageClass(method.input_type),
                    message_factory.GetMessageClass(method.output_type),
                    method.server_streaming,
                    method.client_streaming,
                )
            )
    # Deletes last, so the other RPCs' valid requests still find the seeded objects.
    return sorted(found, key=lambda rpc: rpc.name.startswith("Delete"))


RPCS = _rpcs()


@dataclass
class Fuzz:
    channel: grpc.Channel
    database_url: str
    keys: dict[str, str]
    projects: dict[str, Project]
    cases: int
    outcomes: Counter[str] = field(default_factory=Counter)

    def metadata(self, who: str) -> list[tuple[str, str]]:
        if who == "none":
            return []
        if who == "malformed":
            return [("authorization", "Bearer nope")]
        return [("authorization", f"Bearer {self.keys[who]}")]

    def call(self, rpc: Rpc, payload: bytes | list[bytes], who: str) -> None:
        """Send raw request bytes (a list of them to a client-streaming RPC) and count the
        outcome; fail on a forbidden one."""
        outcome = self._call(rpc, payload, who)
        self.outcomes[outcome] += 1

    def _call(self, rpc: Rpc, payload: bytes | list[bytes], who: str) -> str:
        metadata = self.metadata(who)
        try:
            if rpc.uploading:
                assert isinstance(payload, list)
                answer = self.channel.stream_unary(rpc.path)(
                    iter(payload), metadata=metadata, timeout=UNARY_TIMEOUT
                )
                rpc.response.FromString(answer)
            elif rpc.streaming:
                stream = self.channel.unary_stream(rpc.path)(
                    payload, metadata=metadata, timeout=STREAM_WAIT
                )
                for count, item in enumerate(stream):
                    rpc.response.FromString(item)
                    if count == 2:
                        stream.cancel()
                        break
            else:
                answer = self.channel.unary_unary(rpc.path)(
                    payload, metadata=metadata, timeout=UNARY_TIMEOUT
                )
                rpc.response.FromString(answer)
            return "OK"
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.CANCELLED:
                return "OK"  # we closed it after a few events
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and rpc.streaming:
                return "OK"  # open and waiting for events
            details = error.details()  # type: ignore[attr-defined]
            assert code.name not in FORBIDDEN, f"{rpc.path} as {who}: {code.name} {details}"
            return str(code.name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzz]:
    cases = FUZZ_CASES
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'fuzz.db'}"
    else:
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL tests need ASSISTANTS_TEST_DATABASE_URL (set by .ci/run)")
        reset_postgres(POSTGRES_URL)
        url = POSTGRES_URL
        cases = int(FUZZ_CASES * POSTGRES_SHARE)
    keys = make_keys(url)
    # Requests up to 1 MiB, so the huge values hit that limit cheaply.
    server = ServerProcess(folder, url, max_request_bytes=1024 * 1024)
    channel = grpc.insecure_channel(
        server.target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    )
    try:
        yield Fuzz(channel, url, keys, seed(channel, keys), cases)
        assert server.alive(), server.log.read_text()
    finally:
        channel.close()
        code = server.stop()
    # It never crashed, and shut down cleanly: no stack trace anywhere in its log.
    log = server.log.read_text(errors="replace")
    assert code == 0 and "Traceback" not in log, log[-5000:]


@pytest.mark.timeout(600)
def test_fuzz_every_rpc(fuzz: Fuzz) -> None:
    ids = tuple(id_pool(fuzz.projects))
    valid = templates(fuzz.projects["alpha"])
    # gamma's key is never used by the fuzz, only its ids: nothing of gamma may change.
    gamma = fuzz_checks.snapshot(fuzz.channel, fuzz.keys["gamma"])
    per_rpc = -(-fuzz.cases // len(RPCS))
    for rpc in RPCS:
        requests = st.one_of(
            messages(rpc.request.DESCRIPTOR, rpc.request, ids), mutations(valid[rpc.name], ids)
        )
        raw = raw_payloads(rpc.request.DESCRIPTOR)
        if rpc.uploading:
            # A stream of such messages, half of them after a valid first message, so the
            # chunks and the later messages are reached too.
            first = valid[rpc.name].SerializeToString()
            streams = st.lists(requests.map(lambda r: r.SerializeToString()), max_size=4)
            _run(
                per_rpc,
                st.one_of(streams, streams.map(lambda rest, first=first: [first, *rest])),
                lambda payloads, who, rpc=rpc: fuzz.call(rpc, payloads, who),
            )
            _run(
                RAW_CASES_PER_RPC,
                st.one_of(raw.map(lambda b: [b]), raw.map(lambda b, first=first: [first, b])),
                lambda payloads, who, rpc=rpc: fuzz.call(rpc, payloads, who),
            )
            continue
        _run(
            per_rpc,
            requests,
            lambda request, who, rpc=rpc: fuzz.call(rpc, request.SerializeToString(), who),
        )
        _run(
            RAW_CASES_PER_RPC,
            raw,
            lambda payload, who, rpc=rpc: fuzz.call(rpc, payload, who),
        )

    fuzz_checks.check_serving(fuzz.channel)
    fuzz_checks.wait_for_runs_to_settle(fuzz.database_url)
    seen = fuzz_checks.read_back_everything(fuzz.channel, fuzz.keys)
    fuzz_checks.check_tables(fuzz.database_url, seen)
    assert fuzz_checks.snapshot(fuzz.channel, fuzz.keys["gamma"]) == gamma
    total = sum(fuzz.outcomes.values())
    backend = fuzz.database_url.split(":", 1)[0].split("+", 1)[0]
    print(f"\nfuzz on {backend}: {total} cases; outcomes {dict(fuzz.outcomes.most_common())}")
    print(f"read back after the fuzz: {dict(seen)}")
    assert total >= fuzz.cases


def _run(cases: int, values: st.SearchStrategy[Any], call: Any) -> None:
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(value=values, who=WHO)
    def case(value: Any, who: str) -> None:
        call(value, who)

    case()
