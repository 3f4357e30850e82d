"""`assistants-grpc keys create | list | revoke`, in-process, against a fresh SQLite file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from assistants_grpc.auth.keys import hash_key
from assistants_grpc.cli import main

KEY = re.compile(r"sk-[A-Za-z0-9_-]{48}")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


def _create(url: str, project: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["keys", "create", "--project", project, "--database-url", url]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert KEY.fullmatch(key), out
    assert project in err and "only this once" in err and key not in err
    return key


def test_create_prints_the_key_once_and_stores_only_its_hash(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _create(url, "alpha", capsys)
    assert key != _create(url, "alpha", capsys)
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(text("SELECT * FROM api_keys")).mappings()]
    engine.dispose()
    assert len(rows) == 2
    assert all(key not in str(value) for row in rows for value in row.values())
    assert hash_key(key) in {row["key_hash"] for row in rows}
    assert key[:11] in {row["prefix"] for row in rows}


def test_list_shows_prefix_project_created_and_last_used(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _create(url, "alpha", capsys)
    _create(url, "beta", capsys)
    assert main(["keys", "list", "--database-url", url]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split() == ["ID", "PREFIX", "PROJECT", "CREATED", "LAST", "USED"]
    assert len(lines) == 3
    assert key[:11] in lines[1] and "alpha" in lines[1] and lines[1].endswith("never")
    assert key not in out


def test_revoke_by_prefix_or_id_and_list_all(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = _create(url, "alpha", capsys)
    second = _create(url, "beta", capsys)
    assert main(["keys", "revoke", first[:11], "--database-url", url]) == 0
    assert "revoked" in capsys.readouterr().out
    main(["keys", "list", "--database-url", url])
    listed = capsys.readouterr().out
    assert first[:11] not in listed and second[:11] in listed
    key_id = re.search(r"key_\w+", listed)
    assert key_id is not None
    assert main(["keys", "revoke", key_id.group(0), "--database-url", url]) == 0
    capsys.readouterr()
    main(["keys", "list", "--all", "--database-url", url])
    everything = capsys.readouterr().out
    assert "REVOKED" in everything and first[:11] in everything and second[:11] in everything
    # Revoking with the key itself works too, and again is harmless.
    assert main(["keys", "revoke", first, "--database-url", url]) == 0


def test_revoke_refuses_unknown_and_ambiguous_references(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _create(url, "alpha", capsys)
    _create(url, "alpha", capsys)
    assert main(["keys", "revoke", "sk-nope", "--database-url", url]) == 1
    assert "no API key matches" in capsys.readouterr().err
    assert main(["keys", "revoke", "sk-", "--database-url", url]) == 1
    assert "several keys" in capsys.readouterr().err
    # A LIKE wildcard is taken literally, not as "any key".
    assert main(["keys", "revoke", "%", "--database-url", url]) == 1


def test_create_refuses_a_bad_project_name(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--project", "no spaces", "--database-url", url]) == 2
    assert "invalid project name" in capsys.readouterr().err
