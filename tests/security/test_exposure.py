"""Secure by default: no keys means loopback only; a refused configuration exits 2."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistants_grpc.auth.authenticator import AuthMode
from assistants_grpc.auth.exposure import SecurityConfigError, effective_mode, is_loopback
from assistants_grpc.config import Settings
from assistants_grpc.server import AssistantsServer


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_effective_mode() -> None:
    auto, required, disabled = AuthMode.AUTO, AuthMode.REQUIRED, AuthMode.DISABLED
    # Loopback: as configured.
    for mode in AuthMode:
        for keys in (False, True):
            assert effective_mode(mode, "127.0.0.1", keys_exist=keys, allow_insecure=False) is mode
    # Beyond loopback, keys become required once they exist, for good.
    assert effective_mode(auto, "0.0.0.0", keys_exist=True, allow_insecure=False) is required
    assert effective_mode(required, "0.0.0.0", keys_exist=False, allow_insecure=False) is required
    # Without authentication beyond loopback: refused, unless --allow-insecure.
    for mode, keys in ((auto, False), (disabled, True), (disabled, False)):
        with pytest.raises(SecurityConfigError, match="--allow-insecure"):
            effective_mode(mode, "0.0.0.0", keys_exist=keys, allow_insecure=False)
        assert effective_mode(mode, "0.0.0.0", keys_exist=keys, allow_insecure=True) is mode


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistants_grpc", "serve", "--port", "0", *args],
        env={**os.environ, "ASSISTANTS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serving_the_network_without_keys_is_refused_with_exit_2(tmp_path: Path) -> None:
    result = _serve(tmp_path, "--host", "0.0.0.0")
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert "Traceback" not in result.stderr


async def test_bad_tls_settings_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    missing = str(tmp_path / "missing.pem")
    for settings, message in (
        ({"tls_cert": missing}, "--tls-cert and --tls-key go together"),
        ({"tls_client_ca": missing}, "--tls-client-ca needs --tls-cert and --tls-key"),
        ({"tls_cert": missing, "tls_key": missing}, "cannot read"),
    ):
        server = AssistantsServer(
            Settings(
                host="127.0.0.1", port=0, http_port=0, metrics_port=0, database_url=url, **settings
            )
        )
        with pytest.raises(SecurityConfigError, match=message):
            await server.start()
        assert server.database is None  # nothing left open


async def test_without_keys_the_log_says_loopback_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="assistants_grpc")
    server = AssistantsServer(
        Settings(
            host="127.0.0.1",
            port=0,
            http_port=0,
            metrics_port=0,
            database_url=f"sqlite:///{tmp_path / 'x.db'}",
        )
    )
    await server.start()
    await server.stop(0)
    assert "authentication off (no API key exists yet): listening on loopback" in caplog.text
