"""A small path into a JSON answer: which part of it is the prediction.

Syntax (a subset of JSONPath, enough for model answers)::

    labels                     obj["labels"]
    predictions.0              obj["predictions"][0]       (a number indexes a list)
    predictions[0].score       obj["predictions"][0]["score"]
    predictions[-1]            the last element
    probabilities[*][1]        [row[1] for row in obj["probabilities"]]
    predictions.*.label        [p["label"] for p in obj["predictions"]]
    ["odd.key"]                a key with dots or brackets, quoted ('...' or "...")
    $.predictions[*].label     a leading "$" or "$." is accepted and ignored

``*`` maps the rest of the path over a list's elements (or an object's values) and gives a list.
A missing key or index raises ``SelectorError``.
"""

from __future__ import annotations

import re
from typing import Any

_WILDCARD = object()  # a step meaning "every element"
_INT = re.compile(r"-?[0-9]+")


class SelectorError(ValueError):
    """The selector is malformed, or does not fit the answer; the message says where."""


class Selector:
    """A parsed path; ``select(value)`` applies it."""

    __slots__ = ("steps", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.steps: tuple[object, ...] = tuple(_parse(text))

    def __repr__(self) -> str:
        return f"Selector({self.text!r})"

    def select(self, value: Any) -> Any:
        return _apply(value, self.steps, 0, self.text)


def _parse(text: str) -> list[object]:
    path = text.strip()
    if path.startswith("$"):
        path = path[1:]
    steps: list[object] = []
    i, n = 0, len(path)
    while i < n:
        char = path[i]
        if char == ".":
            i += 1
            if i >= n or path[i] in ".[":
                raise SelectorError(f"selector {text!r}: a name is missing after '.'")
            continue
        if char == "[":
            close = _closing(path, i, text)
            steps.append(_bracket(path[i + 1 : close].strip(), text))
            i = close + 1
            continue
        end = i
        while end < n and path[end] not in ".[":
            end += 1
        name = path[i:end]
        if name == "*":
            steps.append(_WILDCARD)
        elif _is_int(name):
            steps.append(int(name))
        else:
            steps.append(name)
        i = end
    return steps


def _closing(path: str, start: int, text: str) -> int:
    quote = path[start + 1] if start + 1 < len(path) and path[start + 1] in "'\"" else None
    if quote is not None:
        end_quote = path.find(quote, start + 2)
        if end_quote < 0:
            raise SelectorError(f"selector {text!r}: unterminated quote")
        close = path.find("]", end_quote)
    else:
        close = path.find("]", start)
    if close < 0:
        raise SelectorError(f"selector {text!r}: '[' without ']'")
    return close


def _bracket(inner: str, text: str) -> object:
    if inner == "*":
        return _WILDCARD
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return inner[1:-1]
    if _is_int(inner):
        return int(inner)
    raise SelectorError(f"selector {text!r}: [{inner}] is neither an index, * nor a quoted key")


def _is_int(name: str) -> bool:
    return _INT.fullmatch(name) is not None


def _apply(value: Any, steps: tuple[object, ...], at: int, text: str) -> Any:
    for position in range(at, len(steps)):
        step = steps[position]
        if step is _WILDCARD:
            if isinstance(value, dict):
                items = list(value.values())
            elif isinstance(value, list):
                items = value
            else:
                raise SelectorError(f"selector {text!r}: '*' needs a list, found {_kind(value)}")
            return [_apply(item, steps, position + 1, text) for item in items]
        value = _step(value, step, text)
    return value


def _step(value: Any, step: object, text: str) -> Any:
    if isinstance(value, dict):
        key = str(step)
        if key not in value:
            raise SelectorError(f"selector {text!r}: the answer has no key {key!r}")
        return value[key]
    if isinstance(value, list) and isinstance(step, int):
        if not -len(value) <= step < len(value):
            raise SelectorError(f"selector {text!r}: index {step} is out of range")
        return value[step]
    raise SelectorError(f"selector {text!r}: cannot take {step!r} of {_kind(value)}")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
