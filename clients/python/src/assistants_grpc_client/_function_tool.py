"""`@function_tool`: one Python function as both the assistant's tool definition and its code.

The definition comes from the function itself: the name, the description from the docstring's
summary, each parameter's JSON Schema from its type hint (`_schema.py`) and its description from
the docstring's `Args:` section or an `Annotated[X, "text"]` hint. Parameters without a default
are required. The tool runner calls the function with the model's arguments converted back to
the hinted types, so a parameter typed as an enum or a dataclass receives one.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, get_type_hints, overload

from assistants_grpc_client._gen.assistants.v1 import common_pb2
from assistants_grpc_client._schema import (
    accepts_none,
    coerce,
    object_schema,
    schema_for,
    with_default,
)

__all__ = ["FunctionTool", "function_tool"]

P = ParamSpec("P")
R = TypeVar("R")

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Returns?|Yields?|Raises|Examples?|Notes?"
    r"|Attributes|See Also|Warnings?):\s*$"
)
_ARGS_SECTIONS = {"Args", "Arguments", "Parameters", "Params", "Keyword Args"}
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


class FunctionTool(Generic[P, R]):
    """A function with its tool definition. Calling it calls the function."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
        timeout: float | None = None,
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name or fn.__name__
        if not _NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r}: use 1-64 of A-Z, a-z, 0-9, _ and -")
        summary, documented = _parse_docstring(inspect.getdoc(fn))
        self.description = description if description is not None else summary
        self.strict = strict
        # Seconds the runner waits for this tool; None uses the runner's default.
        self.timeout = timeout
        self._hints = get_type_hints(fn, include_extras=True)
        self._signature = inspect.signature(fn)
        self.parameters = self._parameters_schema(documented)

    def _parameters_schema(self, documented: dict[str, str]) -> dict[str, Any]:
        properties: dict[str, dict[str, Any]] = {}
        required: list[str] = []
        for parameter in self._signature.parameters.values():
            if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                raise TypeError(
                    f"{self.name}: parameter {parameter.name!r} must be passable by keyword "
                    "(no positional-only, *args or **kwargs): the model sends a JSON object"
                )
            schema = schema_for(self._hints.get(parameter.name, Any), strict=self.strict)
            if parameter.name in documented and "description" not in schema:
                schema = {**schema, "description": documented[parameter.name]}
            if parameter.default is parameter.empty:
                required.append(parameter.name)
            else:
                schema = with_default(schema, parameter.default, strict=self.strict)
            properties[parameter.name] = schema
        return object_schema(properties, required, strict=self.strict)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionTool({self.name!r})"

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI form: `{"type": "function", "function": {name, description, ...}}`."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    def to_proto(self) -> common_pb2.Tool:
        """The definition as the contract's `Tool` message."""
        definition = common_pb2.FunctionDefinition(name=self.name)
        if self.description:
            definition.description = self.description
        if self.strict:
            definition.strict = True
        definition.parameters.update(self.parameters)
        return common_pb2.Tool(function=definition)

    def parse_arguments(self, arguments: str | Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for the function from the model's JSON arguments, converted to
        the hinted types. ValueError says what is wrong, for the model to read and fix."""
        decoded = json.loads(arguments or "{}") if isinstance(arguments, str) else arguments
        if not isinstance(decoded, Mapping):
            raise ValueError(f"arguments must be a JSON object, got {decoded!r}")
        parameters = self._signature.parameters
        unknown = sorted(set(decoded) - set(parameters))
        if unknown:
            raise ValueError(f"unexpected arguments {unknown}")
        kwargs: dict[str, Any] = {}
        for name, parameter in parameters.items():
            value = decoded.get(name, inspect.Parameter.empty)
            has_default = parameter.default is not parameter.empty
            hint = self._hints.get(name, Any)
            if value is inspect.Parameter.empty or (
                value is None and has_default and not accepts_none(hint)
            ):
                if not has_default:
                    raise ValueError(f"missing required argument {name!r}")
                continue  # the function's own default applies
            kwargs[name] = coerce(value, hint, name)
        return kwargs


@overload
def function_tool(fn: Callable[P, R], /) -> FunctionTool[P, R]: ...


@overload
def function_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    timeout: float | None = None,
) -> Callable[[Callable[P, R]], FunctionTool[P, R]]: ...


def function_tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    timeout: float | None = None,
) -> FunctionTool[P, R] | Callable[[Callable[P, R]], FunctionTool[P, R]]:
    """Make a function a tool, as `@function_tool` or `@function_tool(name=..., timeout=...)`.

    `strict=True` asks the model to follow the schema exactly (OpenAI structured outputs): every
    parameter is then required, and one with a default accepts null for "use the default".
    `timeout` bounds each call in the tool runner.
    """

    def wrap(function: Callable[P, R]) -> FunctionTool[P, R]:
        return FunctionTool(
            function, name=name, description=description, strict=strict, timeout=timeout
        )

    return wrap(fn) if fn is not None else wrap


def _parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """The summary (the text before the first section) and the `Args:` descriptions of a
    Google-style docstring."""
    if not doc:
        return None, {}
    summary: list[str] = []
    arguments: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    entry_indent: int | None = None  # entries sit at one indent; deeper lines continue them
    for line in doc.splitlines():
        header = _SECTION.match(line)
        if header:
            section, current, entry_indent = header.group(1), None, None
            continue
        if section is None:
            summary.append(line)
            continue
        if section not in _ARGS_SECTIONS or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        entry = _ARG_LINE.match(line.strip())
        if entry and (entry_indent is None or indent <= entry_indent):
            entry_indent = indent
            current = entry.group(1)
            arguments[current] = entry.group(2).strip()
        elif current is not None:
            arguments[current] = f"{arguments[current]} {line.strip()}".strip()
    paragraphs = "\n".join(summary).strip().split("\n\n")
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return text or None, arguments
