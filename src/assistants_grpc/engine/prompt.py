"""Builds the chat-completions ``messages`` list of one model turn, truncated to fit its budget.

Pure: no I/O, no database, no model calls. The only work besides building dicts is counting
tokens, and that is kept small on purpose (DESIGN.md "Tokens"): thread messages carry the token
count stored when they were created, so finding where a long thread must be cut is one reverse
pass that adds integers, and only the messages that are kept become dicts. A stored count is
recounted only when it was made with another encoding than the run model's, and only for the
messages the pass actually looks at. Only a text that is shortened is encoded, and only its
head, its tail and the shortened result, never the whole of it.

Prompt tokens are estimated the way OpenAI's cookbook counts chat messages: per message
:data:`~assistants_grpc.engine.tokens.TOKENS_PER_MESSAGE` + role + content, plus
:data:`~assistants_grpc.engine.tokens.REPLY_PRIMING_TOKENS` for the whole prompt, plus the tool
definitions (their compact JSON).

``auto`` truncation follows the seed ("the Thread will smartly truncate messages before fully
dropping the least important ones"; OpenAI documented ``auto`` as dropping from the *middle*).
Always kept: the instructions, the tools, the current run's tool rounds, the newest user message
and everything after it (the *tail*). The rest is given up step by step, each step only while
the prompt still does not fit:

1. Shorten what is long: a message or an earlier run's tool output over the shortening limit
   (``shorten_fraction`` of the budget, :data:`DEFAULT_SHORTEN_FRACTION` by default) keeps its
   head and tail around ``[… N tokens omitted …]``. Least important first: earlier runs' tool
   outputs, then messages oldest first, the opening last.
2. Drop earlier runs' tool rounds, oldest first, each whole: an assistant call never goes
   without its ``tool`` outputs, nor the reverse.
3. Drop the oldest messages, but not the thread's *opening* (its first user message and the
   assistant answer right after it): users put the task, the document, the persona there.
4. Drop the opening's answer, then the opening.
5. Last resort: shorten the tail (the newest user message, what follows it, the current run's
   tool outputs), the longest texts first, to one common length that fits.

Only when even that cannot fit (the instructions and tools alone over the budget, in practice)
is the prompt returned with ``fits=False``, and the run ends ``incomplete``. A message is kept
or dropped whole: its parts are never split. ``last_messages`` N keeps exactly the newest N and
applies steps 1 and 5 to them when they do not fit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

import tiktoken

from assistants_grpc.engine.server_tools import ToolRegistry
from assistants_grpc.engine.tokens import (
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TokenCounter,
    encoding_name_for_model,
)

__all__ = [
    "DEFAULT_SHORTEN_FRACTION",
    "IMAGE_TOKENS",
    "MIN_SHORTENED_TOKENS",
    "ImageRef",
    "Prompt",
    "PromptRequest",
    "ThreadMessage",
    "ToolCallRecord",
    "ToolRound",
    "build_prompt",
    "chat_tools",
    "check_shorten_fraction",
    "omitted_marker",
    "shorten_limit",
]

#: What an image part weighs in the budget (OpenAI's charge for a low-detail image). Stored
#: message counts include it once per image part, so a recount must add it the same way.
IMAGE_TOKENS: Final = 85

#: A text longer than this share of the prompt budget is shortened before anything is dropped.
#: 1/8: one pasted document then never costs more than an eighth of what the model can read,
#: and seven such texts plus the instructions still fit.
DEFAULT_SHORTEN_FRACTION: Final = 0.125

#: Nothing is shortened to fewer tokens than this: the marker (9 tokens) and a few words on
#: either side of it. Below that a text says nothing and the prompt does not fit.
MIN_SHORTENED_TOKENS: Final = 48

# Tokens encoded past what a head or tail keeps: the end of an encoded slice of the text may be
# tokenized differently from the text as a whole, so the cut is made away from it.
_SLICE_MARGIN: Final = 8
# Tokens the marker and the joins around it may take beyond the estimate (a retry follows if
# they take more).
_JOIN_SLACK: Final = 2


def omitted_marker(omitted: int) -> str:
    """What stands between the head and the tail of a shortened text, on a line of its own."""
    return f"\n[… {omitted} tokens omitted …]\n"


def check_shorten_fraction(fraction: float) -> float:
    """``fraction`` if it can be a shortening fraction (0 < f <= 1), else ValueError."""
    if not 0 < fraction <= 1:
        raise ValueError(f"truncation_shorten_fraction must be in (0, 1], got {fraction}")
    return fraction


def shorten_limit(budget: int, fraction: float = DEFAULT_SHORTEN_FRACTION) -> int:
    """The length (tokens) over which a text is shortened, and to which: ``fraction`` of the
    prompt budget, never below :data:`MIN_SHORTENED_TOKENS`."""
    return max(int(budget * fraction), MIN_SHORTENED_TOKENS)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image part of a thread message: exactly one of ``url`` and ``file_id`` is set."""

    url: str | None
    file_id: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """A thread message as the prompt needs it.

    ``token_count`` is the content's weight stored at creation (text tokens in
    ``token_encoding`` plus :data:`IMAGE_TOKENS` per image), without the per-message overhead.
    """

    role: str  # "user" | "assistant"
    text: str
    images: tuple[ImageRef, ...]
    token_count: int
    token_encoding: str


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One call of a tool round, as the model made it, and the output it got back: the output
    the client submitted for a function, the tool message a server-side call produced.
    ``name`` is the function the model called (``python`` for code_interpreter)."""

    id: str
    name: str
    arguments: str
    output: str | None
    tool_type: str = "function"


@dataclass(frozen=True, slots=True)
class ToolRound:
    """A model turn that called tools, with the outputs.

    ``after_message`` is how many of the request's thread messages precede it.
    """

    after_message: int
    text: str | None
    calls: tuple[ToolCallRecord, ...]


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """Everything one model turn's prompt is built from."""

    model: str
    instructions: str | None
    messages: Sequence[ThreadMessage]  # oldest first
    rounds: Sequence[ToolRound]  # the current run's, chronological; never dropped
    tools: Sequence[dict[str, Any]]  # chat-completions definitions (see chat_tools)
    truncation: str  # "auto" | "last_messages"
    last_messages: int | None
    context_window: int
    completion_reserve: int  # tokens kept free for the answer
    max_prompt_tokens: int | None = None  # what is left of the run's prompt budget
    # Earlier runs' tool rounds on the thread, chronological: the first thing `auto` drops.
    earlier_rounds: Sequence[ToolRound] = ()
    shorten_fraction: float = DEFAULT_SHORTEN_FRACTION  # see shorten_limit


@dataclass(frozen=True, slots=True)
class Prompt:
    """The messages to send, their size, and whether they fit the budget.

    ``prompt_tokens`` is the count of exactly these messages (shortened texts counted as sent).
    """

    messages: list[dict[str, Any]]
    prompt_tokens: int
    dropped: int  # thread messages left out
    fits: bool
    shortened: int = 0  # texts sent with their middle omitted
    dropped_rounds: int = 0  # earlier runs' tool rounds left out


def build_prompt(request: PromptRequest, counter: TokenCounter) -> Prompt:
    """Turn ``request`` into chat-completions messages, truncated by ``auto`` (see the module
    docstring) or to the newest N (``last_messages``).

    When even the minimum (see the module docstring) does not fit, the minimum is returned
    unshortened with ``fits=False``: the caller ends the run ``incomplete`` instead of sending it.
    """
    builder = _Builder(request, counter)
    if request.truncation == "last_messages":
        plan = builder.plan_last_messages()
    elif request.truncation == "auto":
        plan = builder.plan_auto()
    else:
        raise ValueError(f"unknown truncation strategy {request.truncation!r}")
    return builder.render(plan)


def chat_tools(
    tools: Sequence[dict[str, Any]], registry: ToolRegistry | None = None
) -> list[dict[str, Any]]:
    """The run's tools (Assistants JSON) as chat-completions tool definitions.

    Function tools are offered as they are. A built-in tool (file_search, code_interpreter) is
    offered as the function its executor in `registry` defines (`file_search`, `python`), once;
    one without an executor is left out: a chat endpoint cannot execute it, so offering it would
    only invite calls nobody can answer.
    """
    converted: list[dict[str, Any]] = []
    offered: set[str] = set()
    for tool in tools:
        kind = tool.get("type")
        if kind != "function":
            executor = registry.for_type(kind) if registry is not None and kind else None
            if executor is not None and kind not in offered:
                offered.add(kind)  # type: ignore[arg-type]
                converted.append(executor.definition(tool))
            continue
        function = {k: v for k, v in (tool.get("function") or {}).items() if v is not None}
        if "parameters" not in function:
            # Some chat endpoints reject a function without a schema; an empty object schema
            # means "no arguments". A fresh literal each time, so no two tools share a dict.
            function["parameters"] = {"type": "object", "properties": {}}
        converted.append({"type": "function", "function": function})
    return converted


def _tools_json(tools: Sequence[dict[str, Any]]) -> str:
    # Compact and unescaped, which is closer to what the model is shown than indented ASCII JSON.
    return json.dumps(list(tools), ensure_ascii=False, separators=(",", ":"))


class _Costs:
    """Token costs in the run model's encoding, with the per-role overhead computed once."""

    __slots__ = ("_counter", "_encoding", "_model", "_role")

    def __init__(self, counter: TokenCounter, model: str) -> None:
        self._counter = counter
        self._model = model
        self._encoding = encoding_name_for_model(model)
        self._role: dict[str, int] = {}

    def text(self, text: str) -> int:
        return self._counter.count_text(self._model, text)

    def overhead(self, role: str) -> int:
        """What a message costs before its content: the fixed framing plus the role."""
        n = self._role.get(role)
        if n is None:
            n = self._role[role] = TOKENS_PER_MESSAGE + self.text(role)
        return n

    def message(self, role: str, text: str) -> int:
        return self.overhead(role) + self.text(text)

    @property
    def encoding_name(self) -> str:
        return self._encoding

    def text_tokens(self, m: ThreadMessage) -> int:
        """The tokens of ``m``'s text alone: from the stored count when it is in this encoding."""
        if m.token_encoding == self._encoding:
            return max(m.token_count - IMAGE_TOKENS * len(m.images), 0)
        # Counted with another encoding (o200k for current models; a cl100k run differs).
        return self.text(m.text)

    def thread_message(self, m: ThreadMessage) -> int:
        return self.overhead(m.role) + IMAGE_TOKENS * len(m.images) + self.text_tokens(m)

    def round_frame(self, r: ToolRound) -> int:
        """What a round costs besides the text of its outputs."""
        # A tool call is sent as its name and JSON arguments inside the assistant message.
        calls = sum(self.text(c.name) + self.text(c.arguments) for c in r.calls)
        return (
            self.message("assistant", r.text or "") + calls + self.overhead("tool") * len(r.calls)
        )

    def output(self, c: ToolCallRecord) -> int:
        return self.text(c.output or "")

    def round(self, r: ToolRound) -> int:
        return self.round_frame(r) + sum(self.output(c) for c in r.calls)


class _Cut(NamedTuple):
    """A text to shorten: its full length and the most it may keep (tokens)."""

    tokens: int
    target: int


# A shortenable text of the prompt: ("m", message index, 0) or (round list "c"urrent or
# "e"arlier, round index, call index) for a tool output.
_Key = tuple[str, int, int]


@dataclass
class _Plan:
    """What is sent: kept messages and earlier rounds (indices, ascending) and the texts to
    shorten. ``total`` is the prompt's cost with every text at full length."""

    kept: list[int]
    earlier: list[int]
    total: int
    cuts: dict[_Key, _Cut] = field(default_factory=dict)
    fits: bool = True

    def shortened_total(self) -> int:
        return self.total - sum(c.tokens - c.target for c in self.cuts.values())


class _Builder:
    """One prompt's truncation: plans with token counts only, then shortens and renders."""

    def __init__(self, request: PromptRequest, counter: TokenCounter) -> None:
        self.request = request
        self.counter = counter
        self.cost = _Costs(counter, request.model)
        budget = request.context_window - request.completion_reserve
        if request.max_prompt_tokens is not None:
            budget = min(budget, request.max_prompt_tokens)
        self.budget = budget
        self.limit = shorten_limit(budget, request.shorten_fraction)
        fixed = REPLY_PRIMING_TOKENS
        if request.instructions:
            fixed += self.cost.message("system", request.instructions)
        if request.tools:
            fixed += self.cost.text(_tools_json(request.tools))
        self.fixed = fixed
        self.messages = request.messages
        # Sorting is stable, so rounds at the same place stay in the order they happened.
        self.current = sorted(request.rounds, key=_after_message)
        self.earlier = sorted(request.earlier_rounds, key=_after_message)
        newest_user = len(self.messages)  # nothing is protected in a thread without one
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "user":
                newest_user = i
                break
        self.newest_user = newest_user

    # --- auto -----------------------------------------------------------------------------

    def plan_auto(self) -> _Plan:
        messages, cost, limit = self.messages, self.cost, self.limit
        p = self.newest_user
        tail_rounds = [k for k, r in enumerate(self.earlier) if r.after_message > p]
        tail = sum(cost.thread_message(messages[i]) for i in range(p, len(messages)))
        tail += sum(cost.round(r) for r in self.current)
        tail += sum(cost.round(self.earlier[k]) for k in tail_rounds)
        plan = _Plan(
            kept=list(range(p, len(messages))), earlier=tail_rounds, total=self.fixed + tail
        )
        room = self.budget - plan.total
        if room < 0:
            return self._shorten_to_fit(plan)  # step 5, with nothing else kept

        opening = self._opening()
        open_costs = [self._message_costs(i) for i in opening]
        open_short = sum(s for _, s, _ in open_costs)
        if open_short > room:  # step 4: nothing but (part of) the opening can stay
            if open_costs and open_costs[0][1] <= room:
                self._keep_messages(plan, opening[:1], open_costs[:1], cut_all=True)
            return plan

        # The middle, newest first, as long as it fits with every long text shortened; the
        # first that does not is where step 3 cuts. Inlined (no call per message but for a
        # recount): this is the loop over long threads.
        space = room - open_short
        first = p  # the oldest middle message kept
        full_sum = short_sum = 0
        long_texts: list[tuple[int, int]] = []  # (index, text tokens) over the limit, newest first
        stopped = False
        skip = frozenset(opening)
        encoding = cost.encoding_name
        overheads: dict[str, int] = {}
        for i in range(p - 1, -1, -1):
            if i in skip:
                continue
            m = messages[i]
            base = overheads.get(m.role)
            if base is None:
                base = overheads[m.role] = cost.overhead(m.role)
            if m.token_encoding == encoding and not m.images:
                t = m.token_count
            else:
                t = cost.text_tokens(m)
                base += IMAGE_TOKENS * len(m.images)
            if t > limit:
                short = base + limit
                if short_sum + short > space:
                    stopped = True
                    break
                long_texts.append((i, t))
            else:
                short = base + t
                if short_sum + short > space:
                    stopped = True
                    break
            first = i
            full_sum += base + t
            short_sum += short
        long_texts.reverse()
        middle = [i for i in range(first, p) if i not in skip]
        plan.kept = sorted([*opening, *middle, *plan.kept])
        plan.total += sum(full for full, _, _ in open_costs) + full_sum

        if stopped:  # step 3: every earlier round went before the first message did
            opening_long = [(i, t) for i, (_, _, t) in zip(opening, open_costs, strict=True)]
            for i, t in [*opening_long, *long_texts]:
                if t > limit:
                    plan.cuts[("m", i, 0)] = _Cut(t, limit)
            return plan

        rounds = [k for k, r in enumerate(self.earlier) if r.after_message <= p]
        outputs = {k: [cost.output(c) for c in self.earlier[k].calls] for k in rounds}
        frames = {k: cost.round_frame(self.earlier[k]) for k in rounds}
        rounds_full = sum(frames[k] + sum(outputs[k]) for k in rounds)
        plan.earlier = sorted([*rounds, *tail_rounds])
        plan.total += rounds_full
        excess = plan.total - self.budget
        if excess <= 0:
            return plan  # everything fits as it is
        # Step 1, least important first, only as far as needed; or all of it, then step 2.
        candidates: list[tuple[_Key, int]] = [
            (("e", k, j), o) for k in rounds for j, o in enumerate(outputs[k])
        ]
        candidates += [(("m", i, 0), t) for i, t in long_texts]
        opening_last = list(zip(opening, open_costs, strict=True))[::-1]  # the answer first
        candidates += [(("m", i, 0), c[2]) for i, c in opening_last]
        for key, tokens in candidates:
            if tokens > limit:
                plan.cuts[key] = _Cut(tokens, limit)
                excess -= tokens - limit
                if excess <= 0:
                    return plan
        dropped: set[int] = set()
        for k in rounds:  # step 2; enough by construction (the walk did not stop)
            if excess <= 0:
                break
            dropped.add(k)
            excess -= frames[k] + sum(min(o, limit) for o in outputs[k])
            plan.total -= frames[k] + sum(outputs[k])
            for j in range(len(outputs[k])):
                plan.cuts.pop(("e", k, j), None)
        plan.earlier = [k for k in plan.earlier if k not in dropped]
        return plan

    def _opening(self) -> list[int]:
        """The thread's first user message and the assistant answer right after it, if they
        come before the newest user message."""
        messages, p = self.messages, self.newest_user
        first = next((i for i in range(p) if messages[i].role == "user"), None)
        if first is None:
            return []
        if first + 1 < p and messages[first + 1].role == "assistant":
            return [first, first + 1]
        return [first]

    def _message_costs(self, i: int) -> tuple[int, int, int]:
        """Message ``i``'s cost in full, with its text shortened, and its text's tokens."""
        m = self.messages[i]
        t = self.cost.text_tokens(m)
        base = self.cost.overhead(m.role) + IMAGE_TOKENS * len(m.images)
        return base + t, base + min(t, self.limit), t

    def _keep_messages(
        self,
        plan: _Plan,
        indices: Sequence[int],
        costs: Sequence[tuple[int, int, int]],
        *,
        cut_all: bool,
    ) -> None:
        """Add messages to ``plan`` at full length; with ``cut_all`` the long ones shortened."""
        for i, (full, _, tokens) in zip(indices, costs, strict=True):
            plan.total += full
            if cut_all and tokens > self.limit:
                plan.cuts[("m", i, 0)] = _Cut(tokens, self.limit)
        plan.kept = sorted([*plan.kept, *indices])

    # --- last_messages --------------------------------------------------------------------

    def plan_last_messages(self) -> _Plan:
        messages, cost, limit = self.messages, self.cost, self.limit
        n = len(messages)
        keep = n if self.request.last_messages is None else self.request.last_messages
        first = max(0, n - keep)
        rounds = [k for k, r in enumerate(self.earlier) if r.after_message >= first]
        plan = _Plan(kept=list(range(first, n)), earlier=rounds, total=self.fixed)
        plan.total += sum(cost.thread_message(messages[i]) for i in plan.kept)
        plan.total += sum(cost.round(r) for r in self.current)
        plan.total += sum(cost.round(self.earlier[k]) for k in rounds)
        excess = plan.total - self.budget
        if excess <= 0:
            return plan
        # last_messages decides what is kept on its own: steps 1 and 5, never a drop.
        tail = max(self.newest_user, first)
        candidates: list[tuple[_Key, int]] = [
            (("e", k, j), cost.output(c))
            for k in rounds
            if self.earlier[k].after_message <= tail
            for j, c in enumerate(self.earlier[k].calls)
        ]
        candidates += [(("m", i, 0), cost.text_tokens(messages[i])) for i in range(first, tail)]
        for key, tokens in candidates:
            if tokens > limit:
                plan.cuts[key] = _Cut(tokens, limit)
                excess -= tokens - limit
                if excess <= 0:
                    return plan
        return self._shorten_to_fit(plan)

    # --- step 5 ---------------------------------------------------------------------------

    def _shorten_to_fit(self, plan: _Plan) -> _Plan:
        """Shorten every text ``plan`` keeps, the longest first, to one common length that
        fits; if none does, the plan unshortened, marked as not fitting."""
        texts: list[tuple[_Key, int]] = [
            (("m", i, 0), self.cost.text_tokens(self.messages[i])) for i in plan.kept
        ]
        for kind, rounds, indices in (
            ("c", self.current, range(len(self.current))),
            ("e", self.earlier, plan.earlier),
        ):
            for k in indices:
                texts += [
                    ((kind, k, j), self.cost.output(c)) for j, c in enumerate(rounds[k].calls)
                ]
        sizes = [plan.cuts[key].target if key in plan.cuts else tokens for key, tokens in texts]
        room = sum(sizes) - (plan.shortened_total() - self.budget)
        fitted = _water_fill(sizes, room, MIN_SHORTENED_TOKENS)
        if fitted is None:
            plan.cuts.clear()
            plan.fits = False
            return plan
        for (key, tokens), size in zip(texts, fitted, strict=True):
            if size < tokens:
                plan.cuts[key] = _Cut(tokens, size)
        return plan

    # --- rendering ------------------------------------------------------------------------

    def render(self, plan: _Plan) -> Prompt:
        """The plan's messages, its long texts shortened; the count is of what is sent."""
        saved = 0
        shortened: dict[int, ThreadMessage] = {}
        for (kind, i, _), cut in plan.cuts.items():
            if kind == "m":
                m = self.messages[i]
                text, tokens = self._shorten(m.text, cut)
                saved += cut.tokens - tokens
                shortened[i] = replace(m, text=text)
        earlier = []
        for k in plan.earlier:
            r, round_saved = self._shorten_round(self.earlier[k], "e", k, plan.cuts)
            saved += round_saved
            earlier.append(r)
        current = []
        for k, r in enumerate(self.current):
            r, round_saved = self._shorten_round(r, "c", k, plan.cuts)
            saved += round_saved
            current.append(r)
        # Earlier runs' rounds before the current run's at the same place (they happened first).
        rounds = sorted([*earlier, *current], key=_after_message)
        total = plan.total - saved
        return Prompt(
            messages=_render(
                self.request.instructions, self.messages, plan.kept, shortened, rounds
            ),
            prompt_tokens=total,
            dropped=len(self.messages) - len(plan.kept),
            fits=plan.fits and total <= self.budget,
            shortened=len(plan.cuts),
            dropped_rounds=len(self.earlier) - len(plan.earlier),
        )

    def _shorten_round(
        self, r: ToolRound, kind: str, k: int, cuts: dict[_Key, _Cut]
    ) -> tuple[ToolRound, int]:
        calls = list(r.calls)
        saved = 0
        changed = False
        for j, c in enumerate(calls):
            cut = cuts.get((kind, k, j))
            if cut is not None:
                text, tokens = self._shorten(c.output or "", cut)
                saved += cut.tokens - tokens
                calls[j] = replace(c, output=text)
                changed = True
        return (replace(r, calls=tuple(calls)) if changed else r), saved

    def _shorten(self, text: str, cut: _Cut) -> tuple[str, int]:
        """``text`` (``cut.tokens`` long) as its head, the marker and its tail, in at most
        ``cut.target`` tokens; returns it with its exact count.

        Cut on token boundaries of the run model's encoding. tiktoken's tokens are bytes, and a
        boundary may fall inside a multibyte character (CJK, emoji): the bytes of a character
        cut in two are left out, so the result is always valid UTF-8. Only slices of the text
        somewhat longer than the head and the tail are encoded, never the whole text.
        """
        encoding = self.counter.encoding_for_model(self.request.model)
        marker = self.cost.text(omitted_marker(cut.tokens))  # no shorter number is longer
        keep = max(cut.target - marker - _JOIN_SLACK, 0)
        head_n = (keep + 1) // 2
        tail_n = keep - head_n
        head_ids = _head_ids(encoding, text, cut.tokens, head_n)
        tail_ids = _tail_ids(encoding, text, cut.tokens, tail_n)
        while True:
            head = _decode(encoding, head_ids[:head_n])
            tail = _decode(encoding, tail_ids[len(tail_ids) - tail_n :] if tail_n else [])
            if len(head) + len(tail) >= len(text):
                # The stored count overstated the text: it is short enough as it is.
                return text, self.cost.text(text)
            omitted = max(cut.tokens - head_n - tail_n, 1)
            shortened = head + omitted_marker(omitted) + tail
            tokens = self.cost.text(shortened)
            if tokens <= cut.target or head_n + tail_n == 0:
                return shortened, tokens
            # The joins merged into fewer, longer-to-cut tokens than estimated: take less.
            excess = tokens - cut.target
            head_n = max(head_n - (excess + 1) // 2 - 1, 0)
            tail_n = max(tail_n - excess // 2 - 1, 0)


def _after_message(r: ToolRound) -> int:
    return r.after_message


def _head_ids(encoding: tiktoken.Encoding, text: str, tokens: int, n: int) -> list[int]:
    """The tokens of a prefix of ``text`` holding ``n`` and a margin, or of all of it."""
    if n <= 0:
        return []
    size = _slice_chars(text, tokens, n)
    while True:
        ids = encoding.encode(text[:size], disallowed_special=())
        if len(ids) >= n + _SLICE_MARGIN or size >= len(text):
            return ids
        size *= 2


def _tail_ids(encoding: tiktoken.Encoding, text: str, tokens: int, n: int) -> list[int]:
    """Like `_head_ids`, for a suffix."""
    if n <= 0:
        return []
    size = _slice_chars(text, tokens, n)
    while True:
        ids = encoding.encode(text[-size:], disallowed_special=())
        if len(ids) >= n + _SLICE_MARGIN or size >= len(text):
            return ids
        size *= 2


def _slice_chars(text: str, tokens: int, n: int) -> int:
    """Characters likely to hold ``n`` tokens and the margin, from the text's own ratio."""
    per_token = len(text) / max(tokens, 1)
    return int((n + 2 * _SLICE_MARGIN) * per_token * 1.25) + 16


def _decode(encoding: tiktoken.Encoding, ids: Sequence[int]) -> str:
    # A slice of the text's tokens is a slice of its UTF-8 bytes; only a character cut at either
    # end can be incomplete, and "ignore" leaves exactly that out.
    return encoding.decode_bytes(ids).decode("utf-8", errors="ignore")


def _water_fill(sizes: Sequence[int], room: int, floor: int) -> list[int] | None:
    """Sizes no larger than ``sizes`` that sum to at most ``room``: the largest cut to one
    common length (what is already shorter keeps its length), never below ``floor``. None
    when that cannot fit."""
    if sum(sizes) <= room:
        return list(sizes)
    left, rest = len(sizes), room
    cap = 0
    for size in sorted(sizes):
        if size * left <= rest:
            rest -= size
            left -= 1
            continue
        cap = rest // left
        break
    if cap < floor:
        return None
    return [min(size, cap) for size in sizes]


def _render(
    instructions: str | None,
    messages: Sequence[ThreadMessage],
    kept: Sequence[int],
    shortened: dict[int, ThreadMessage],
    rounds: Iterable[ToolRound],
) -> list[dict[str, Any]]:
    """The system message, then the kept messages (ascending indices; `shortened` replaces
    some) with each round before the first kept message past its place. A round whose message
    was dropped has lost its place; it goes before the next kept message, which is where its
    context now starts."""
    out: list[dict[str, Any]] = []
    if instructions:
        out.append({"role": "system", "content": instructions})
    pending = iter(rounds)
    next_round = next(pending, None)
    for i in kept:
        while next_round is not None and next_round.after_message <= i:
            out.extend(_render_round(next_round))
            next_round = next(pending, None)
        out.append(_render_message(shortened.get(i) or messages[i]))
    # Rounds after the last message (the current run's, usually) close the prompt.
    while next_round is not None:
        out.extend(_render_round(next_round))
        next_round = next(pending, None)
    return out


def _render_message(m: ThreadMessage) -> dict[str, Any]:
    if not m.images:
        return {"role": m.role, "content": m.text}
    parts: list[dict[str, Any]] = []
    if m.text:
        parts.append({"type": "text", "text": m.text})
    # Chat endpoints take image parts in user messages only; elsewhere they are rejected, so an
    # image in an assistant message is described in text instead.
    images_allowed = m.role == "user"
    parts.extend(_image_part(image, images_allowed) for image in m.images)
    return {"role": m.role, "content": parts}


def _image_part(image: ImageRef, images_allowed: bool) -> dict[str, Any]:
    if image.url is None:
        # Uploaded files have no storage here to serve them from, so the model only learns one
        # was attached.
        return {"type": "text", "text": f"[image file {image.file_id}]"}
    if not images_allowed:
        # A data: URL would put the whole base64 image into the text.
        shown = "inline data" if image.url.startswith("data:") else image.url
        return {"type": "text", "text": f"[image {shown}]"}
    url: dict[str, Any] = {"url": image.url}
    if image.detail is not None:
        url["detail"] = image.detail
    return {"type": "image_url", "image_url": url}


def _render_round(r: ToolRound) -> list[dict[str, Any]]:
    call: dict[str, Any] = {"role": "assistant", "content": r.text or None}
    if r.calls:  # an empty tool_calls list is rejected by chat endpoints
        call["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in r.calls
        ]
    else:
        call["content"] = r.text or ""
    outputs = [{"role": "tool", "tool_call_id": c.id, "content": c.output or ""} for c in r.calls]
    return [call, *outputs]
