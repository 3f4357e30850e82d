"""The turn accumulator, fed plain model events (no database, no bus), and the decision of how a
turn ends."""

from __future__ import annotations

from assistants_grpc.engine import transitions as tr
from assistants_grpc.engine.accumulator import CallDelta, TurnAccumulator
from assistants_grpc.engine.model_stream import (
    Finished,
    ModelError,
    RefusalDelta,
    TextDelta,
    ToolCallArguments,
    ToolCallStarted,
    UsageReport,
)
from assistants_grpc.engine.turn_end import Calls, Ended, Interrupted, decide
from assistants_grpc.store.run_states import RunStatus
from assistants_grpc.tools.code_interpreter.arguments import CodeInputStream
from tests.integration.echo_tools import EchoCode, EchoSearch, MarkerAnnotator

IMAGE = {"type": "image_file", "image_file": {"file_id": "file-1"}}


def feed(turn: TurnAccumulator, *events: object) -> TurnAccumulator:
    for event in events:
        turn.feed(event)  # type: ignore[arg-type]
    return turn


def pending(turn: TurnAccumulator) -> list[tuple[int, str, str]]:
    return [(p.index, p.kind, p.text) for p in turn.take_pending()]


def test_text_streams_as_it_comes_and_opens_the_message_once() -> None:
    turn = TurnAccumulator()
    assert not turn.has_pending and not turn.opens_message
    feed(turn, TextDelta("Hel"), TextDelta(""), TextDelta("lo"))
    assert turn.opens_message
    assert pending(turn) == [(0, "text", "Hello")]
    assert turn.message_started and not turn.opens_message and not turn.has_pending
    feed(turn, TextDelta(" there"))
    assert pending(turn) == [(0, "text", " there")]
    assert turn.content() == [{"type": "text", "text": {"value": "Hello there", "annotations": []}}]


def test_calls_are_held_and_text_after_them_joins_the_one_message() -> None:
    turn = feed(
        TurnAccumulator(),
        ToolCallStarted(0, "call_a", "get_weather"),
        ToolCallArguments(0, '{"city":'),
        ToolCallStarted(1, "call_b", "get_time"),
        ToolCallArguments(0, '"Paris"}'),
        ToolCallArguments(1, "{}"),
    )
    assert not turn.has_pending  # calls never stream while the answer goes on
    feed(turn, TextDelta("Checking"), TextDelta(" now."), Finished("tool_calls"))
    assert pending(turn) == [(0, "text", "Checking now.")]
    calls = [(c.index, c.id, c.name, c.arguments) for c in turn.ordered_calls()]
    assert calls == [
        (0, "call_a", "get_weather", '{"city":"Paris"}'),
        (1, "call_b", "get_time", "{}"),
    ]
    assert turn.finish_reason == "tool_calls"


def test_interleaved_text_and_calls_make_one_text_part() -> None:
    turn = feed(
        TurnAccumulator(),
        TextDelta("Let me "),
        ToolCallStarted(0, "call_a", "f"),
        TextDelta("see "),
        ToolCallArguments(0, "{}"),
        TextDelta("that."),
    )
    assert pending(turn) == [(0, "text", "Let me see that.")]
    assert turn.answer_text() == "Let me see that."
    assert turn.written_text() == "Let me see that.{}"


def test_refusals_are_their_own_part_and_usage_is_kept() -> None:
    turn = feed(
        TurnAccumulator(), TextDelta("a"), RefusalDelta("no"), UsageReport(3, 4), Finished("stop")
    )
    assert pending(turn) == [(0, "text", "a"), (1, "refusal", "no")]
    assert turn.usage == UsageReport(3, 4)
    assert turn.answer_text() == "a"


def test_lead_parts_open_the_message_first() -> None:
    turn = TurnAccumulator(lead_parts=[IMAGE])
    assert turn.opens_message
    feed(turn, TextDelta("Here is the plot."))
    deltas = turn.take_pending()
    assert [(d.index, d.kind, d.whole) for d in deltas] == [(0, "whole", IMAGE), (1, "text", None)]
    assert turn.content()[0] == IMAGE and turn.content()[1]["text"]["value"] == "Here is the plot."


def test_an_annotator_holds_markers_back_and_releases_annotations_whole() -> None:
    turn = TurnAccumulator(annotators=[MarkerAnnotator()])
    feed(turn, TextDelta("See 【0:0"))
    assert pending(turn) == [(0, "text", "See ")]
    feed(turn, TextDelta("†doc】 and 【1"))
    (delta,) = turn.take_pending()
    assert delta.text == "【0:0†doc】 and "
    assert delta.annotations == [
        {
            "index": 0,
            "type": "file_citation",
            "text": "【0:0†doc】",
            "start_index": 4,
            "end_index": 13,
            "file_citation": {"file_id": "file-cited"},
        }
    ]
    # An unfinished marker is released at the end of the answer, as plain text.
    feed(turn, TextDelta(":0"))
    assert not turn.has_pending
    turn.end()
    assert pending(turn) == [(0, "text", "【1:0")]
    text = turn.content()[0]["text"]
    assert text["value"] == "See 【0:0†doc】 and 【1:0"
    assert [a["text"] for a in text["annotations"]] == ["【0:0†doc】"]
    assert "index" not in text["annotations"][0]  # the stored form has none


def test_annotations_wait_for_their_text_through_the_chain() -> None:
    """The first annotator finds a marker the second still holds back: the annotation goes out
    with its text, not before it."""

    class HoldAll:
        def __init__(self) -> None:
            self.held = ""

        def feed(self, text: str) -> tuple[str, list[dict[str, object]]]:
            self.held += text
            return "", []

        def finish(self) -> tuple[str, list[dict[str, object]]]:
            out, self.held = self.held, ""
            return out, []

    turn = TurnAccumulator(annotators=[MarkerAnnotator(), HoldAll()])
    feed(turn, TextDelta("x 【a】 y"))
    assert not turn.has_pending
    turn.end()
    (delta,) = turn.take_pending()
    assert delta.text == "x 【a】 y" and [a["start_index"] for a in delta.annotations] == [2]


def test_dropped_pending_is_never_handed_out() -> None:
    turn = feed(TurnAccumulator(), TextDelta("kept"))
    turn.take_pending()
    feed(turn, TextDelta(" dropped"))
    turn.drop_pending()
    assert not turn.has_pending


# --- live turns: a server-side call first ----------------------------------------------------


class DecodingCode(EchoCode):
    """EchoCode whose input stream is the real `python` one (JSON `code` decoded as it comes)."""

    def input_stream(self) -> CodeInputStream:
        return CodeInputStream()


def live_turn(**kwargs: object) -> TurnAccumulator:
    tools = {"python": DecodingCode(), "file_search": EchoSearch()}
    return TurnAccumulator(live_tools=tools, **kwargs)  # type: ignore[arg-type]


def calls(turn: TurnAccumulator) -> list[tuple[int, bool, dict[str, object]]]:
    return [(d.index, d.opens, d.body) for d in turn.take_call_deltas()]


def test_a_server_side_first_call_streams_every_call_as_it_comes() -> None:
    turn = live_turn()
    feed(turn, TextDelta("Let me compute."))
    assert pending(turn) == [(0, "text", "Let me compute.")]
    feed(turn, ToolCallStarted(0, "call_a", "python"))
    assert turn.live and turn.opens_live_step and turn.has_pending
    assert calls(turn) == [(0, True, {})]
    assert not turn.opens_live_step and not turn.has_pending
    # The code is decoded as it comes: an escape split across fragments comes out whole.
    feed(turn, ToolCallArguments(0, '{"code": "print(1)\\'))
    assert calls(turn) == [(0, False, {"input": "print(1)"})]
    feed(turn, ToolCallArguments(0, "nx = 2"), ToolCallArguments(0, '\\u00e9"}'))
    assert calls(turn) == [(0, False, {"input": "\nx = 2\u00e9"})]  # coalesced
    # A function call of the same turn streams too, raw.
    feed(turn, ToolCallStarted(1, "call_b", "get_weather"), ToolCallArguments(1, '{"city":'))
    assert turn.take_call_deltas() == [CallDelta(1, True, {"arguments": '{"city":'})]
    feed(turn, ToolCallArguments(1, ' "Oslo"}'), Finished("tool_calls"))
    assert calls(turn) == [(1, False, {"arguments": ' "Oslo"}'})]
    # What the input showed is kept for the step; the drafts hold the raw arguments.
    assert turn.inputs[0].first == {"input": "", "outputs": []}
    assert turn.inputs[0].streamed == {"input": "print(1)\nx = 2\u00e9"}
    assert [c.arguments for c in turn.ordered_calls()] == [
        '{"code": "print(1)\\nx = 2\\u00e9"}',
        '{"city": "Oslo"}',
    ]
    # The message is what was streamed before the call; nothing more is pending for it.
    turn.end()
    assert not turn.has_pending and turn.answer_text() == "Let me compute."
    assert turn.trailing_parts() == []


def test_text_after_a_live_call_is_held_for_the_next_message() -> None:
    turn = live_turn(annotators=[MarkerAnnotator()])
    feed(turn, TextDelta("See "), ToolCallStarted(0, "call_a", "file_search"))
    assert pending(turn) == [(0, "text", "See ")]
    feed(turn, ToolCallArguments(0, '{"query": "x"}'), TextDelta("then 【0:0†doc】 ok"))
    # file_search shows no input: only its first delta; the text is not the message's.
    assert calls(turn) == [(0, True, {})]
    assert not turn.has_pending
    turn.end()
    assert not turn.has_pending
    assert turn.content() == [{"type": "text", "text": {"value": "See ", "annotations": []}}]
    # Its annotation's positions are within the held text, not the whole turn's.
    (part,) = turn.trailing_parts()
    assert part["text"]["value"] == "then 【0:0†doc】 ok"
    (annotation,) = part["text"]["annotations"]
    assert (annotation["start_index"], annotation["end_index"]) == (5, 14)
    assert "index" not in annotation
    assert turn.written_text() == 'See then 【0:0†doc】 ok{"query": "x"}'


def test_a_function_first_turn_stays_held_even_with_a_server_side_call_after() -> None:
    turn = live_turn()
    feed(
        turn,
        ToolCallStarted(0, "call_a", "get_weather"),
        ToolCallArguments(0, "{}"),
        ToolCallStarted(1, "call_b", "python"),
        ToolCallArguments(1, '{"code": "1"}'),
        TextDelta("after"),
    )
    assert not turn.live and not turn.take_call_deltas()
    assert pending(turn) == [(0, "text", "after")]  # joins the one message, as before
    assert turn.trailing_parts() == []


def test_a_live_turn_interrupted_drops_what_was_not_handed_out() -> None:
    turn = live_turn()
    feed(turn, ToolCallStarted(0, "call_a", "python"), ToolCallArguments(0, '{"code": "x'))
    turn.drop_pending()
    assert not turn.take_call_deltas()


# --- how a turn ends -------------------------------------------------------------------------


def decide_for(turn: TurnAccumulator, **kwargs: object) -> object:
    options: dict[str, object] = {
        "server_functions": {"python": EchoCode()},
        "server_rounds": 0,
        "max_tool_rounds": 20,
    }
    return decide(turn, **(options | kwargs))  # type: ignore[arg-type]


def test_decide_answers_calls_and_interrupts() -> None:
    assert decide_for(feed(TurnAccumulator(), Finished("stop"))) == Ended(tr.COMPLETED)
    filtered = decide_for(feed(TurnAccumulator(), Finished("content_filter")))
    assert isinstance(filtered, Ended) and filtered.ending.message_reason == "content_filter"
    cut = decide_for(feed(TurnAccumulator(), ToolCallStarted(0, "call_a", "f"), Finished("length")))
    assert cut == Ended(tr.incomplete("max_completion_tokens"))
    error = ModelError("rate_limit_exceeded", "slow down")
    failed = decide_for(TurnAccumulator(), error=error)
    assert isinstance(failed, Ended) and not failed.with_usage
    assert failed.ending.status == RunStatus.FAILED and failed.ending.error_message == "slow down"
    assert decide_for(TurnAccumulator(), interrupt="cancel") == Interrupted("cancel")

    mixed = feed(
        TurnAccumulator(),
        ToolCallStarted(0, "call_a", "python"),
        ToolCallStarted(1, "call_b", "get_weather"),
        Finished("tool_calls"),
    )
    outcome = decide_for(mixed)
    assert isinstance(outcome, Calls)
    assert [c.id for c, _ in outcome.server] == ["call_a"]
    assert [c.id for c in outcome.functions] == ["call_b"]


def test_decide_caps_server_side_rounds() -> None:
    turn = feed(TurnAccumulator(), ToolCallStarted(0, "call_a", "python"), Finished("tool_calls"))
    capped = decide_for(turn, server_rounds=3, max_tool_rounds=3)
    assert isinstance(capped, Ended) and capped.ending.status == RunStatus.FAILED
    assert "3 rounds of server-side tool calls" in (capped.ending.error_message or "")
    # Function calls alone are the caller's business: no cap.
    functions = feed(TurnAccumulator(), ToolCallStarted(0, "call_a", "f"), Finished("tool_calls"))
    assert isinstance(decide_for(functions, server_rounds=3, max_tool_rounds=3), Calls)
