"""What the import and export commands show: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

import assistants_grpc.transfer as transfer
from assistants_grpc.transfer import Progress
from assistants_grpc.transfer.kinds import KINDS
from assistants_grpc.transfer.report import Problem, Summary


def test_public_names() -> None:
    assert set(transfer.__all__) == {
        "ExportResult",
        "ImportOptions",
        "Problem",
        "Progress",
        "Summary",
        "export",
        "import_files",
    }
    # Parents before children: the write order depends on it.
    assert [k.object for k in KINDS] == [
        "file",
        "vector_store",
        "vector_store.file",
        "assistant",
        "thread",
        "thread.message",
        "thread.run",
        "thread.run.step",
    ]


def test_a_terminal_gets_a_bar_redrawn_in_place_with_problems_above() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=True)
    progress.phase("writing", 200, "objects")
    progress.advance(50)
    progress.problem("dump.jsonl:3: role: required.")
    progress.end_phase()
    text = out.getvalue()
    assert "\r\x1b[K[######------------------] writing: 50 objects of 200 objects (25%)" in text
    assert "\r\x1b[Kdump.jsonl:3: role: required.\n" in text
    assert text.endswith("\n")


def test_elsewhere_plain_lines_at_most_every_interval() -> None:
    out = io.StringIO()
    progress = Progress(out, interval=3600, tty=False)
    progress.phase("reading", 3 << 20, "bytes")
    for done in range(0, 3 << 20, 1 << 10):
        progress.advance(done)
    progress.advance(3 << 20, "9 objects")
    progress.end_phase()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first call, then the end of the phase
    assert lines[-1].startswith("reading: 3.0 MiB of 3.0 MiB (100%), ")
    assert lines[-1].endswith(", 9 objects")
    assert "\r" not in out.getvalue()


def test_summary_table_and_outcome() -> None:
    seen: list[str] = []
    summary = Summary(lambda p: seen.append(str(p)))
    summary.count("thread", "imported", 1204)
    summary.refuse("thread.message", Problem("m.jsonl", 7, "thread_id", "no such thread"))
    summary.report(Problem("x.json", None, "", "No such file or directory"))
    assert seen == ["m.jsonl:7: thread_id: no such thread", "x.json: No such file or directory"]
    assert not summary.ok
    assert summary.table([k.object for k in KINDS]).splitlines() == [
        "type            imported  unchanged  replaced  refused",
        "thread             1,204          0         0        0",
        "thread.message         0          0         0        1",
    ]


def test_skipped_objects_are_notes_not_problems() -> None:
    seen: list[str] = []
    summary = Summary(lambda p: seen.append(str(p)))
    summary.count("file", "imported", 2)
    summary.skip("vector_store.files_batch", Problem("d.jsonl", 4, "", "not imported: a batch"))
    assert seen == ["d.jsonl:4: not imported: a batch"]
    assert summary.ok and summary.problems == 0
    # The column shows only when something was skipped.
    assert summary.table([k.object for k in KINDS]).splitlines() == [
        "type                      imported  unchanged  replaced  refused  skipped",
        "file                             2          0         0        0        0",
        "vector_store.files_batch         0          0         0        0        1",
    ]
