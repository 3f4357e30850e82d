"""Server TLS from PEM files: `--tls-cert`/`--tls-key` serve TLS, `--tls-client-ca` also asks
every client for a certificate signed by that CA (mTLS)."""

from __future__ import annotations

from pathlib import Path

import grpc

from assistants_grpc.auth.exposure import SecurityConfigError


def _read(flag: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SecurityConfigError(f"{flag}: cannot read {path}: {error.strerror}") from None


def server_credentials(
    cert: str | None, key: str | None, client_ca: str | None
) -> grpc.ServerCredentials | None:
    """The credentials to serve with; None for plaintext."""
    if cert is None and key is None:
        if client_ca is not None:
            raise SecurityConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise SecurityConfigError("--tls-cert and --tls-key go together")
    pair = (_read("--tls-key", key), _read("--tls-cert", cert))
    roots = _read("--tls-client-ca", client_ca) if client_ca is not None else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=roots, require_client_auth=roots is not None
    )


__all__ = ["server_credentials"]
