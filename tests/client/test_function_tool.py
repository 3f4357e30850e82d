"""`@function_tool`: the JSON Schema of each supported type, descriptions from docstrings,
required vs default parameters, strict mode, and arguments converted back to the hinted types."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict

import pytest
from assistants_grpc_client import FunctionTool, function_tool
from assistants_grpc_client.v1 import common_pb2


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Place:
    """A place on Earth."""

    city: str
    country: str = "FR"
    tags: list[str] = field(default_factory=list, metadata={"description": "Free labels."})


class Window(TypedDict):
    start: int
    end: NotRequired[int]


def parameters_of(fn: Any) -> dict[str, Any]:
    schema: dict[str, Any] = function_tool(fn).parameters
    return schema


def property_of(annotation: Any) -> dict[str, Any]:
    """The schema of one required parameter of this type."""

    def fn(value: Any) -> None: ...

    fn.__annotations__ = {"value": annotation, "return": None}
    schema = parameters_of(fn)
    assert schema["required"] == ["value"]
    result: dict[str, Any] = schema["properties"]["value"]
    return result


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (Any, {}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (tuple[str, ...], {"type": "array", "items": {"type": "string"}}),
        (set[str], {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (Optional[str], {"type": ["string", "null"]}),  # noqa: UP045 - the spelling under test
        (int | None, {"type": ["integer", "null"]}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
        (Literal["a", 1], {"enum": ["a", 1]}),
        (Unit, {"type": "string", "enum": ["celsius", "fahrenheit"]}),
        (Priority, {"type": "integer", "enum": [1, 2]}),
        (Unit | None, {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]}),
        (Annotated[str, "The city."], {"type": "string", "description": "The city."}),
        (
            list[Literal["x", "y"]],
            {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
        ),
    ],
)
def test_schema_of_each_supported_type(annotation: Any, expected: dict[str, Any]) -> None:
    assert property_of(annotation) == expected


def test_dataclass_schema() -> None:
    assert property_of(Place) == {
        "type": "object",
        "description": "A place on Earth.",
        "properties": {
            "city": {"type": "string"},
            "country": {"type": "string", "default": "FR"},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "Free labels."},
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_typeddict_schema() -> None:
    assert property_of(Window) == {
        "type": "object",
        "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}},
        "required": ["start"],
        "additionalProperties": False,
    }


def test_nested_and_optional_records() -> None:
    schema = property_of(list[Place] | None)
    assert schema["type"] == ["array", "null"]
    assert schema["items"]["required"] == ["city"]


@function_tool
def get_weather(
    city: str, unit: Unit = Unit.CELSIUS, days: int | None = None, detailed: bool = False
) -> str:
    """Get the current weather in a city.

    Uses the nearest station.

    Args:
        city: The city, e.g. "Paris".
        unit: The temperature unit,
            celsius unless asked.

    Returns:
        A short report.
    """
    return f"{city}: 21 {unit.value}"


def test_definition_from_the_function() -> None:
    assert isinstance(get_weather, FunctionTool)
    assert get_weather.name == "get_weather"
    assert (
        get_weather.description == "Get the current weather in a city.\n\nUses the nearest station."
    )
    assert get_weather.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": 'The city, e.g. "Paris".'},
            "unit": {
                "type": "string",
                "enum": ["celsius", "fahrenheit"],
                "description": "The temperature unit, celsius unless asked.",
                "default": "celsius",
            },
            "days": {"type": ["integer", "null"], "default": None},
            "detailed": {"type": "boolean", "default": False},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    # Still the function.
    assert get_weather("Lyon") == "Lyon: 21 celsius"


def test_definition_as_proto_and_openai_dict() -> None:
    tool = get_weather.to_proto()
    assert isinstance(tool, common_pb2.Tool)
    assert tool.function.name == "get_weather"
    assert tool.function.description.startswith("Get the current weather")
    assert json.loads(json.dumps(dict(tool.function.parameters)["required"], default=list)) == [
        "city"
    ]
    assert get_weather.to_dict() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": get_weather.description,
            "parameters": get_weather.parameters,
        },
    }


def test_strict_mode_requires_everything_and_makes_defaults_nullable() -> None:
    @function_tool(strict=True, name="lookup", description="Look it up.", timeout=2.5)
    def find(query: str, limit: int = 5, region: str | None = None) -> list[str]:
        return [query] * limit

    assert (find.name, find.description, find.strict, find.timeout) == (
        "lookup",
        "Look it up.",
        True,
        2.5,
    )
    assert find.parameters["required"] == ["query", "limit", "region"]
    assert find.parameters["properties"]["limit"] == {"type": ["integer", "null"]}
    assert find.parameters["properties"]["region"] == {"type": ["string", "null"]}
    assert find.to_dict()["function"]["strict"] is True
    # null for a defaulted parameter means "use the default".
    assert find.parse_arguments('{"query": "x", "limit": null, "region": null}') == {
        "query": "x",
        "region": None,
    }


def test_arguments_come_back_as_the_hinted_types() -> None:
    @function_tool
    def plan(place: Place, unit: Unit, window: Window, scores: list[float], ids: set[int]) -> None:
        pass

    kwargs = plan.parse_arguments(
        json.dumps(
            {
                "place": {"city": "Paris", "tags": ["x"]},
                "unit": "fahrenheit",
                "window": {"start": 1},
                "scores": [1, 2.5],
                "ids": [3, 3],
            }
        )
    )
    assert kwargs == {
        "place": Place("Paris", "FR", ["x"]),
        "unit": Unit.FAHRENHEIT,
        "window": {"start": 1},
        "scores": [1.0, 2.5],
        "ids": {3},
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "missing required argument 'city'"),
        ('{"city": 3}', "city: expected string, got 3"),
        ('{"city": "x", "unit": "kelvin"}', "unit: expected one of ['celsius', 'fahrenheit']"),
        ('{"city": "x", "days": true}', "expected integer, got True"),
        ('{"city": "x", "wind": 3}', "unexpected arguments ['wind']"),
    ],
)
def test_bad_arguments_are_explained(arguments: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_weather.parse_arguments(arguments)


def test_unsupported_signatures_are_refused_at_decoration() -> None:
    def takes_bytes(data: bytes) -> None: ...

    def takes_args(*names: str) -> None: ...

    def bad_keys(mapping: dict[int, str]) -> None: ...

    with pytest.raises(TypeError, match="no JSON Schema"):
        function_tool(takes_bytes)
    with pytest.raises(TypeError, match="passable by keyword"):
        function_tool(takes_args)
    with pytest.raises(TypeError, match="keys are strings"):
        function_tool(bad_keys)
    with pytest.raises(ValueError, match="tool name"):
        function_tool(name="has spaces")(get_weather.fn)


async def test_async_functions_keep_their_schema() -> None:
    @function_tool
    async def fetch(url: str, retries: int = 2) -> str:
        """Fetch a URL."""
        return url * retries

    assert fetch.parameters["required"] == ["url"]
    assert fetch.description == "Fetch a URL."
    assert await fetch("a") == "aa"
