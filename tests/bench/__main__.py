"""`python -m tests.bench [--quick] [--only NAME ...] [--no-postgres]` (what `make bench` runs).

Starts the model server, the echo server and the service (SQLite in a temporary directory) as
child processes on 127.0.0.1, measures, and writes `bench/results.md` and `bench/results.json`.
PostgreSQL (`--postgres-url`, default the local trust-auth server) gets its own service process
and a dedicated `bench` database whose schema is emptied first. Every child is stopped at the
end, however the benchmark ends.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

from tests.bench import (
    code,
    files,
    http,
    observability,
    prompt,
    replicas,
    report,
    runs,
    streams,
    tools,
    transfer,
    unary,
)
from tests.bench.common import Plan
from tests.bench.model_server import models_config
from tests.bench.processes import (
    REPO_ROOT,
    Child,
    Children,
    CpuMeter,
    free_port,
    machine_busy_pct,
    run_event_loop,
)

SECTIONS: Final = (
    "unary", "runs", "http", "tools", "streams", "prompt", "code", "files", "observability",
    "postgres", "replicas", "import",
)  # fmt: skip
_POSTGRES_SECTIONS: Final = ("postgres", "replicas")
# Sections that start their own processes and need no service.
_STANDALONE: Final = ("import",)
DEFAULT_POSTGRES: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter pass (under a minute)")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, metavar="NAME",
        help=f"measure only this section (repeatable): {', '.join(SECTIONS)}",
    )  # fmt: skip
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL pass")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench", help="results folder")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="SECONDS",
        help="first wait up to SECONDS for the machine to be idle (a shared machine is noisy)",
    )  # fmt: skip
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR",
        help="record the service with py-spy during each section (raw collapsed stacks in DIR)",
    )  # fmt: skip
    return parser


class Profiler:
    """`py-spy record` on the service for the duration of one section (optional)."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self.exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if out_dir is not None:
            if self.exe is None:
                raise SystemExit("--py-spy: py-spy not found (.venv/bin/pip install py-spy)")
            out_dir.mkdir(parents=True, exist_ok=True)

    async def around(self, name: str, pid: int, work: Awaitable[Any]) -> Any:
        if self.out_dir is None or self.exe is None:
            return await work
        out = self.out_dir / f"{name}.txt"
        argv = [self.exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
        argv += ["--output", str(out), "--nonblocking"]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return await work
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(10)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan = Plan.short() if args.quick else Plan.default()
        self.sections = list(args.only or SECTIONS)
        if args.no_postgres:
            self.sections = [s for s in self.sections if s not in _POSTGRES_SECTIONS]
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.postgres_version: str | None = None
        self.cpu: dict[str, dict[str, float]] = {}
        self.pids: Callable[[], list[int]] = lambda: [os.getpid()]
        self.profiler = Profiler(args.py_spy)

    async def main(self, children: Children, tmp: Path) -> None:
        self.pids = children.pids
        model = children.start_model_server()
        print(f"bench: model server pid {model.pid} port {model.port}", flush=True)
        if any(name not in (*_POSTGRES_SECTIONS, *_STANDALONE) for name in self.sections):
            await self._sqlite(children, model, tmp)
        postgres_files = "files" in self.sections and not self.args.no_postgres
        if postgres_files or any(name in _POSTGRES_SECTIONS for name in self.sections):
            await self._postgres(children, model, tmp)
        if "import" in self.sections:
            await self._import(tmp)

    async def _import(self, tmp: Path) -> None:
        """`import` and `export` commands, each its own process, on SQLite then PostgreSQL."""
        print("bench: import…", flush=True)
        began = time.monotonic()
        meter = CpuMeter(self.pids)
        meter.start()
        url = None if self.args.no_postgres else self.args.postgres_url
        try:
            self.results["import"] = await asyncio.to_thread(
                transfer.measure,
                tmp,
                self.plan.import_threads,
                url,
                lambda: _reset_postgres(self.args.postgres_url),
            )
        except Exception as error:
            traceback.print_exc()
            self.errors["import"] = _one_line(error)
        finally:
            self.cpu["import"] = meter.stop()
        print(f"bench: import done in {time.monotonic() - began:.1f} s", flush=True)

    def _models_config(self, model: Child, tmp: Path) -> list[str]:
        """The service's flags that route `bench-fast-nagle` to the Nagle-on model server."""
        path = tmp / "models.toml"
        path.write_text(models_config(model.second_port))
        return ["--models-config", str(path)]

    async def _sqlite(self, children: Children, model: Child, tmp: Path) -> None:
        sqlite_url = f"sqlite:///{tmp / 'bench.db'}"
        http_port = free_port()
        service = children.start_service(
            "service-sqlite",
            sqlite_url,
            model.port,
            [*self._models_config(model, tmp), "--http-port", str(http_port)],
        )
        print(f"bench: service (SQLite) pid {service.pid} port {service.port}", flush=True)

        if "unary" in self.sections:
            echo = children.start_echo_server()
            print(f"bench: echo server pid {echo.pid} port {echo.port}", flush=True)
            try:
                await self._section(
                    "unary",
                    service,
                    lambda: unary.measure(
                        service.port, service.pid, echo.port, echo.pid, self.plan
                    ),
                )
            finally:
                children.stop(echo)
        if "runs" in self.sections:
            await self._section(
                "runs",
                service,
                lambda: runs.measure(
                    service.port,
                    service.pid,
                    model.port,
                    model.pid,
                    self.plan,
                    nagle_port=model.second_port,
                ),
            )
        if "http" in self.sections:
            await self._section(
                "http",
                service,
                lambda: http.measure(service.port, http_port, service.pid, self.plan),
            )
        if "tools" in self.sections:
            await self._section(
                "tools", service, lambda: tools.measure(service.port, model.port, self.plan)
            )
        if "streams" in self.sections:
            await self._section(
                "streams", service, lambda: streams.measure(service.port, service.pid, self.plan)
            )
        if "prompt" in self.sections:
            p = self.plan
            await self._section(
                "prompt",
                service,
                lambda: prompt.measure(
                    service.port,
                    sqlite_url,
                    p.prompt_messages,
                    p.prompt_repeats,
                    p.prompt_db_repeats,
                ),
            )
        if "code" in self.sections:
            await self._section("code", service, lambda: code.measure(self.plan))
        if "files" in self.sections:
            await self._section(
                "files", service, lambda: files.measure(children, model.port, tmp, self.plan)
            )
        if "observability" in self.sections:
            await self._section(
                "observability",
                service,
                lambda: observability.measure(children, model.port, tmp, self.plan),
            )
        children.stop(service)

    async def _postgres(self, children: Children, model: Child, tmp: Path) -> None:
        url = self.args.postgres_url
        try:
            self.postgres_version = _reset_postgres(url)
        except Exception as error:
            for name in _POSTGRES_SECTIONS:
                self.results[name] = {"skipped": f"PostgreSQL not reachable: {error}"}
            print(f"bench: postgres skipped: {error}", flush=True)
            return
        if "replicas" in self.sections:
            await self._replicas(children, model, url)
            _reset_postgres(url)
        if "files" in self.sections:
            await self._files_postgres(children, model, url)
            _reset_postgres(url)
        if "postgres" not in self.sections:
            return
        service = children.start_service(
            "service-postgres", url, model.port, self._models_config(model, tmp)
        )
        print(f"bench: service (PostgreSQL) pid {service.pid} port {service.port}", flush=True)
        try:
            await self._section(
                "postgres",
                service,
                lambda: runs.measure(
                    service.port,
                    service.pid,
                    model.port,
                    model.pid,
                    self.plan,
                    nagle_port=model.second_port,
                    full=False,
                ),
            )
        finally:
            children.stop(service)

    async def _section(
        self, name: str, service: Child, measure: Callable[[], Awaitable[dict[str, Any]]]
    ) -> None:
        print(f"bench: {name}…", flush=True)
        began = time.monotonic()
        meter = CpuMeter(self.pids)
        meter.start()
        failed = False
        try:
            self.results[name] = await self.profiler.around(name, service.pid, measure())
        except Exception as error:
            failed = True
            # Loud, but the other sections still run and the report says what failed.
            traceback.print_exc()
            print(f"bench: {service.name} log tail:\n{service.log_tail()}", file=sys.stderr)
            self.errors[name] = _one_line(error)
        finally:
            self.cpu[name] = meter.stop()
            # A dead service fails the whole benchmark, not just this section.
            service.check_alive(grace=1.0 if failed else 0.0)
        cpu = self.cpu[name]
        busy, other = cpu["machine_busy_pct"], cpu["other_processes_pct"]
        print(
            f"bench: {name} done in {time.monotonic() - began:.1f} s "
            f"(machine {busy:.0f}% busy, other processes {other:.0f}%)",
            flush=True,
        )

    async def _files_postgres(self, children: Children, model: Child, url: str) -> None:
        """The files section's search figures on PostgreSQL (its service comes and goes)."""
        print("bench: files (PostgreSQL)…", flush=True)
        began = time.monotonic()
        try:
            from assistants_grpc.store import migrate
            from assistants_grpc.store.database import Database

            database = Database(url)
            try:
                await asyncio.to_thread(migrate.upgrade, database)
            finally:
                database.dispose()
            self.results["files_postgres"] = await files.measure_search(
                children, model.port, url, self.plan, "service-files-postgres"
            )
        except Exception as error:
            traceback.print_exc()
            self.errors["files_postgres"] = _one_line(error)
        print(f"bench: files (PostgreSQL) done in {time.monotonic() - began:.1f} s", flush=True)

    async def _replicas(self, children: Children, model: Child, url: str) -> None:
        """Several service processes on one database; they come and go inside the section."""
        print("bench: replicas…", flush=True)
        began = time.monotonic()
        try:
            self.results["replicas"] = await replicas.measure(
                children, model.port, url, self.plan, lambda: _reset_postgres(url)
            )
        except Exception as error:
            traceback.print_exc()
            self.errors["replicas"] = _one_line(error)
        print(f"bench: replicas done in {time.monotonic() - began:.1f} s", flush=True)


def _one_line(error: BaseException) -> str:
    details = getattr(error, "details", None)
    if callable(details):  # a grpc error: its code and details, not its multi-line repr
        return f"{type(error).__name__}: {error.code().name}: {details()}"  # type: ignore[attr-defined]
    return f"{type(error).__name__}: {error}"


def _reset_postgres(url: str) -> str:
    """Create the bench database if missing, empty its public schema; returns the version."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    target = make_url(url).set(drivername="postgresql")
    database = target.database or "bench"

    def conninfo(name: str) -> str:
        return target.set(database=name).render_as_string(hide_password=False)

    with psycopg.connect(conninfo("postgres"), autocommit=True, connect_timeout=3) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(conninfo(database), autocommit=True, connect_timeout=3) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")
        row = connection.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def _command(argv: list[str]) -> str:
    return f"make bench BENCH_ARGS={shlex.quote(shlex.join(argv))}" if argv else "make bench"


QUIET_PCT: Final = 15.0


def _wait_quiet(limit: float) -> float:
    """Wait (at most `limit` seconds) until the machine is under QUIET_PCT busy for 3 s in a
    row; returns the last reading."""
    deadline = time.monotonic() + limit
    busy = machine_busy_pct(1.0)
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if busy < QUIET_PCT else 0
        if quiet >= 3:
            break
        busy = machine_busy_pct(1.0)
    return busy


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    bench = Bench(args)
    if args.wait_quiet > 0:
        busy = _wait_quiet(args.wait_quiet)
        print(f"bench: machine {busy:.0f}% busy before starting", flush=True)
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="assistants-bench-"))
    try:
        with Children(tmp) as children:
            try:
                run_event_loop(bench.main(children, tmp))
            except Exception:
                traceback.print_exc()
                bench.errors.setdefault("bench", "the benchmark stopped early (see its output)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": _command(sys.argv[1:] if argv is None else list(argv)),
        "mode": "quick" if args.quick else "default",
        "duration_s": round(time.monotonic() - began, 1),
        "commit": report.commit(),
        "machine": report.machine(),
        "versions": report.versions(),
        "postgresql": bench.postgres_version,
        "plan": dataclasses.asdict(bench.plan),
        "sections": bench.results,
        "cpu": bench.cpu,
        "errors": bench.errors,
    }
    results["targets"] = report.evaluate(bench.results)
    md_path, json_path = report.write(results, args.out)
    print(report.markdown(results).split("## Unary")[0].rstrip())
    print(f"\nbench: wrote {md_path} and {json_path} in {results['duration_s']:.0f} s")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
