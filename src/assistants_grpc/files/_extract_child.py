"""The extraction child: `python -I -m assistants_grpc.files._extract_child IN NAME OUT CPU MEM`.

It caps itself first (resource.setrlimit: CPU seconds, address space, bytes written), then reads
the file at IN named NAME, writes its text to OUT as UTF-8 and prints one JSON line: `{"ok":
true, "chars": N}` or `{"ok": false, "code": ..., "message": ...}`. Anything worse (a crash, a
cap reached) shows as its exit status, which the parent reads (files/extraction.py).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def _cap(cpu_seconds: int, memory_bytes: int, output_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str]) -> int:
    source, filename, target, cpu, memory = argv
    from assistants_grpc.files.extract import MAX_TEXT_CHARS, ExtractionError, extract_text

    # 4 bytes a character at most in UTF-8, plus slack.
    _cap(int(cpu), int(memory), 4 * MAX_TEXT_CHARS + (1 << 20))
    try:
        text = extract_text(Path(source), filename)
    except ExtractionError as error:
        print(json.dumps({"ok": False, "code": error.code, "message": error.message}))
        return 0
    except MemoryError:
        print(json.dumps({"ok": False, "code": "invalid_file", "message": "memory"}))
        return 0
    Path(target).write_text(text, encoding="utf-8")
    print(json.dumps({"ok": True, "chars": len(text)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
