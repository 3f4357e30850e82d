"""Settings check themselves at start-up: `assistants-grpc serve` with a value it cannot run
with says which flag or variable is wrong and exits 2, before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assistants_grpc.cli import main
from assistants_grpc.config import Settings


def _serve(argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[int, str]:
    # The database is a fresh file that nothing may create: a refusal starts nothing.
    database = tmp_path / "never" / "a.db"
    code = main(["serve", "--port", "0", "--database-url", f"sqlite:///{database}", *argv])
    assert not database.parent.exists()
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-concurrent-runs", "0"], "--max-concurrent-runs / ASSISTANTS_MAX_CONCURRENT_RUNS"),
        (["--run-lease-seconds", "-1"], "--run-lease-seconds / ASSISTANTS_RUN_LEASE_SECONDS"),
        (["--run-lease-seconds", "0"], "must be more than 0 seconds, got 0.0"),
        (["--shutdown-grace", "-0.5"], "--shutdown-grace / ASSISTANTS_SHUTDOWN_GRACE"),
        (["--claim-poll-interval", "-1"], "--claim-poll-interval"),
        (["--claim-poll-interval", "nan"], "must be more than 0 seconds, got nan"),
        (["--max-streams-per-key", "-1"], "--max-streams-per-key"),
        (["--rate-limit-per-second", "-2"], "--rate-limit-per-second"),
        (["--max-message-chars", "0"], "--max-message-chars"),
        (["--model-max-retries", "-1"], "--model-max-retries"),
        (["--port", "70000"], "a port between 0 and 65535"),
        (["--http-port", "-1"], "--http-port / ASSISTANTS_HTTP_PORT: must be a port"),
        (["--metrics-port", "65536"], "--metrics-port / ASSISTANTS_METRICS_PORT: must be a port"),
        (["--log-level", "LOUD"], "not a log level: 'LOUD'"),
    ],
)
def test_a_bad_flag_is_named_and_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = _serve(argv, capsys, tmp_path)
    assert code == 2
    assert err.startswith("assistants-grpc: ") and message in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ASSISTANTS_MAX_CONCURRENT_RUNS", "0", "must be at least 1, got 0"),
        ("ASSISTANTS_RUN_LEASE_SECONDS", "-3", "must be more than 0 seconds, got -3.0"),
        ("ASSISTANTS_ALLOW_INSECURE", "maybe", "ASSISTANTS_ALLOW_INSECURE: not a boolean"),
        ("ASSISTANTS_MIGRATE_ON_START", "enabled", "ASSISTANTS_MIGRATE_ON_START: not a boolean"),
        ("ASSISTANTS_PORT", "http", "ASSISTANTS_PORT: not a valid int: 'http'"),
        ("ASSISTANTS_HTTP_PORT", "80a", "ASSISTANTS_HTTP_PORT: not a valid int: '80a'"),
        ("ASSISTANTS_LOG_FORMAT", "xml", "--log-format / ASSISTANTS_LOG_FORMAT: must be text or"),
    ],
)
def test_a_bad_variable_is_named_and_exits_2(
    variable: str,
    value: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, value)
    database = tmp_path / "never" / "a.db"
    code = main(["serve", "--database-url", f"sqlite:///{database}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not database.parent.exists()


@pytest.mark.parametrize(
    ("word", "meaning"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("On", True),
        (" on ", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_boolean_words(word: str, meaning: bool) -> None:
    assert Settings.load(env={"ASSISTANTS_ALLOW_INSECURE": word}).allow_insecure is meaning


def test_the_defaults_and_the_zero_meaning_off_are_accepted() -> None:
    Settings()
    Settings(port=0, shutdown_grace=0, max_streams_per_key=0, rate_limit_per_second=0)


def test_the_process_exits_2(tmp_path: Path) -> None:
    """The same through a real `assistants-grpc serve` process."""
    result = subprocess.run(
        [sys.executable, "-m", "assistants_grpc", "serve", "--max-concurrent-runs", "0"],
        env={"ASSISTANTS_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "--max-concurrent-runs / ASSISTANTS_MAX_CONCURRENT_RUNS: must be at least 1" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_the_http_face_binds_the_grpc_host_unless_told() -> None:
    assert Settings.load(env={}).http_port == 8080
    assert Settings.load(env={"ASSISTANTS_HOST": "::1"}).http_bind_host == "::1"
    told = Settings.load({"http_host": "127.0.0.2"}, env={"ASSISTANTS_HTTP_PORT": "0"})
    assert (told.http_bind_host, told.http_port) == ("127.0.0.2", 0)
