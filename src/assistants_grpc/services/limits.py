"""Size limits on what a request may carry into storage and into a model's prompt.

Each is a setting (`config.Settings`, `--max-*` flags); going past one is INVALID_ARGUMENT naming
the field, before anything is written. The transport's own limits (request bytes, streams and
calls per key) live with the server and `auth.limits`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    # Total characters of the text parts of one message.
    max_message_chars: int = 256_000
    # Content parts of one message.
    max_content_parts: int = 32
    # UTF-8 bytes of one tool output, and of all outputs of one submission together.
    max_tool_output_bytes: int = 512 * 1024
    max_tool_outputs_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"{f.name} must be at least 1, got {getattr(self, f.name)}")


__all__ = ["Limits"]
