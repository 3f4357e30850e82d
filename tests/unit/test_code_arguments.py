"""The `python` call's code decoded from its JSON arguments as they stream: whatever the split,
the pieces add up to exactly the code json.loads reads."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from assistants_grpc.tools.code_interpreter.arguments import (
    REPLACEMENT,
    CodeDecoder,
    CodeInputStream,
    decode_code,
)


def streamed(fragments: list[str]) -> str:
    decoder = CodeDecoder()
    return "".join(decoder.feed(f) for f in fragments) + decoder.finish()


def every_split(text: str) -> list[list[str]]:
    """The text cut once at every point, and cut into single characters."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


CASES = [
    "print(1)",
    'print("a \\"quoted\\" word")\n',
    "x = '\\\\n is not a newline'\tdone\r\n",
    "caf\u00e9 \u2603 \U0001f600 emoji",
    "\b\f/ slash",
    "",
]


def test_each_case_comes_out_whole_at_every_split() -> None:
    for code in CASES:
        for ensure_ascii in (True, False):
            arguments = json.dumps({"code": code}, ensure_ascii=ensure_ascii)
            for fragments in every_split(arguments):
                assert streamed(fragments) == code, (arguments, fragments)


def test_a_surrogate_pair_split_inside_its_escapes() -> None:
    arguments = '{"code": "a\\ud83d\\ude00b"}'
    for fragments in every_split(arguments):
        assert streamed(fragments) == "a\U0001f600b"


def test_lone_surrogates_become_the_replacement_character() -> None:
    assert decode_code('{"code": "a\\ud83db"}').code == f"a{REPLACEMENT}b"
    assert decode_code('{"code": "a\\ude00b"}').code == f"a{REPLACEMENT}b"
    assert decode_code('{"code": "\\ud83d\\ud83d\\ude00"}').code == REPLACEMENT + "\U0001f600"
    assert decode_code('{"code": "a\\ud83d"}').code == f"a{REPLACEMENT}"


def test_other_keys_are_skipped_whatever_their_value() -> None:
    arguments = json.dumps(
        {
            "lang": "py \"code\": 'x'",
            "n": -1.5e3,
            "flags": [True, None, {"code": "not this", "s": "}]"}],
            "code": "the code",
            "after": {"code": "nor this"},
        }
    )
    for fragments in every_split(arguments):
        assert streamed(fragments) == "the code"
    decoded = decode_code(arguments)
    assert decoded.found and decoded.complete


def test_bare_code_is_taken_as_it_is() -> None:
    assert decode_code("print(1)\n").code == "print(1)\n"
    assert decode_code("  import os").code == "import os"
    assert decode_code("print(1)").found


def test_cut_off_and_missing_code_are_reported() -> None:
    cut = decode_code('{"code": "print(1)\\')
    assert cut.found and not cut.complete and cut.code == "print(1)\\"
    assert not decode_code('{"other": "x"}').found
    assert not decode_code("").found
    assert not decode_code('{"code": 3}').found


def test_raw_control_characters_are_kept() -> None:
    assert decode_code('{"code": "a\nb"}').code == "a\nb"


def test_the_input_stream_deltas() -> None:
    stream = CodeInputStream()
    assert stream.first() == {"input": "", "outputs": []}
    assert stream.feed('{"co') is None
    assert stream.feed('de": "pri') == {"input": "pri"}
    assert stream.feed("nt(1)\\") == {"input": "nt(1)"}
    assert stream.feed('n"}') == {"input": "\n"}


@settings(max_examples=300, deadline=None)
@given(
    code=st.text(st.characters(exclude_categories=["Cs"]), max_size=60),
    ensure_ascii=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_random_code_split_at_random_points(code: str, ensure_ascii: bool, cuts: list[int]) -> None:
    arguments = json.dumps({"code": code}, ensure_ascii=ensure_ascii)
    points = sorted({c % (len(arguments) + 1) for c in cuts})
    fragments = [
        arguments[a:b] for a, b in zip([0, *points], [*points, len(arguments)], strict=True)
    ]
    assert streamed(fragments) == code == json.loads(arguments)["code"]
    assert decode_code(arguments).code == code


@settings(max_examples=100, deadline=None)
@given(code=st.text(st.characters(exclude_categories=["Cs"]), max_size=25))
def test_random_code_at_every_split(code: str) -> None:
    arguments = json.dumps({"code": code, "x": [code]}, ensure_ascii=True)
    for fragments in every_split(arguments):
        assert streamed(fragments) == code
