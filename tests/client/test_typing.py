"""The client is typed for `mypy --strict`: code using it (typed_usage.py, the examples) checks
clean, and a misspelt argument is caught."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def mypy(*paths: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        *map(str, paths),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_usage_and_examples_pass_mypy_strict() -> None:
    examples = sorted((ROOT / "examples").glob("*.py"))
    assert examples
    code, output = await mypy(Path(__file__).with_name("typed_usage.py"), *examples)
    assert code == 0, output


async def test_mistakes_are_type_errors(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_usage.py"
    wrong.write_text(
        "from assistants_grpc_client import Client\n"
        "\n"
        "def f(client: Client) -> None:\n"
        "    client.assistants.create(modle='gpt-4o')\n"
        "    client.assistants.create(name='no model')\n"
        "    client.messages.create('thread_1', role='system', content='x')\n"
        "    run: str = client.runs.retrieve('run_1', thread_id='thread_1')\n"
    )
    code, output = await mypy(wrong)
    assert code == 1, output
    assert 'Unexpected keyword argument "modle"' in output
    assert 'Missing named argument "model"' in output
    assert "role" in output and "system" in output
    assert 'incompatible type "Run"' in output or '"Run", variable has type "str"' in output
