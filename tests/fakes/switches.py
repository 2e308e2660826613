"""The switches that make a fake behave or misbehave, and their validation.

One dataclass holds every switch with its default; the same names are used by
``FakeProvider.configure(**switches)``, by attribute access on a fake, by
``POST /_fake/config`` and by ``python -m tests.fakes --set NAME=VALUE``.
A bad name or a value of the wrong type is refused with a message that names
the switch, so a typo in a test fails loudly instead of silently testing the
happy path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Switches", "SWITCH_NAMES", "SwitchError", "MISBEHAVIOUR"]


class SwitchError(ValueError):
    """A switch name that does not exist, or a value of the wrong type."""


@dataclass
class Switches:
    """Every switch of a fake. "Frames" are the SSE events (Gemini without
    ``alt=sse``: array elements) of a stream, counted from 0, role chunk,
    ``ping`` and Azure's prompt-filter chunk included.

    models                 ids served (Azure: deployment names); default per type
    reply                  the answer text; None = "You said: <last user message>"
    reasoning              True (= "Let me think about that.") or a text: reasoning
                           before the answer (OpenAI deltas, Anthropic thinking
                           block with signature, Gemini ``thought`` parts)
    reasoning_style        OpenAI/Azure only: "field" (``reasoning_content``),
                           "reasoning" (``reasoning``), "think_tags" (``<think>``
                           inside content, tags cut as "<thi" "nk>")
    usage                  False = never send usage, even if asked (llama.cpp)
    page_size              largest page a model list serves (Anthropic, Gemini)
    required_key           None = any key or none accepted; else this key
    accepted_keys          more keys accepted (any one will do)
    status                 answer every request with this HTTP status and the
                           provider's error body
    message                the error message for ``status`` (default per provider)
    retry_after            seconds, sent as ``Retry-After`` with ``status``
    html                   200 text/html page, like a web server at a wrong address
    garbage                200 application/json whose body is not JSON
    hang                   read the request, never answer
    truncate_after         close the stream after N frames, without the end
    truncate_style         "abort": cut the connection mid-body (the client sees
                           an incomplete chunked body); "clean": end the body
                           properly, still without the final frames / [DONE]
    malformed_after        insert a frame of invalid JSON after N frames, then go on
    error_event_after      after N frames send the provider's in-stream error
                           (OpenAI/Azure ``data: {"error"}``, Anthropic ``event:
                           error`` overloaded_error, Gemini ``data: {"error"}``)
                           and end the stream
    fail_times             the misbehaviours above (status..error_event_after)
                           hit only the next N provider requests, then the fake
                           behaves; None = every request
    fail_keys              the misbehaviours hit only requests with one of these keys
    reject_stream_options  OpenAI/Azure: 400 when the body has ``stream_options``
    first_byte_delay       seconds before any byte of the answer
    chunk_delay            seconds between frames
    """

    # What is served.
    models: list[str] = field(default_factory=list)
    reply: str | None = None
    reasoning: bool | str = False
    reasoning_style: str = "field"
    usage: bool = True
    page_size: int | None = None
    # Keys.
    required_key: str | None = None
    accepted_keys: list[str] | None = None
    # Failures. These (see MISBEHAVIOUR) obey fail_times and fail_keys.
    status: int | None = None
    message: str | None = None
    retry_after: float | None = None
    html: bool = False
    garbage: bool = False
    hang: bool = False
    truncate_after: int | None = None
    truncate_style: str = "abort"
    malformed_after: int | None = None
    error_event_after: int | None = None
    fail_times: int | None = None
    fail_keys: list[str] | None = None
    # Server quirks that are properties of the server, not failures.
    reject_stream_options: bool = False
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0

    def behaving(self) -> Switches:
        """A copy with every misbehaviour switched off (fail_times used up)."""
        return dataclasses.replace(self, **{name: _FIELDS[name].default for name in MISBEHAVIOUR})

    def copy(self) -> Switches:
        return dataclasses.replace(
            self,
            models=list(self.models),
            accepted_keys=None if self.accepted_keys is None else list(self.accepted_keys),
            fail_keys=None if self.fail_keys is None else list(self.fail_keys),
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def misbehaves(self) -> bool:
        return any(getattr(self, name) != _FIELDS[name].default for name in MISBEHAVIOUR)

    def updated(self, **changes: Any) -> Switches:
        """A copy with ``changes`` applied after checking names and types."""
        clean = {name: validate(name, value) for name, value in changes.items()}
        return dataclasses.replace(self.copy(), **clean)

    def accepts_any_key(self) -> bool:
        return self.required_key is None and not self.accepted_keys

    def key_accepted(self, key: str | None) -> bool:
        if self.accepts_any_key():
            return True
        allowed = set(self.accepted_keys or ())
        if self.required_key is not None:
            allowed.add(self.required_key)
        return key in allowed


_FIELDS = {f.name: f for f in dataclasses.fields(Switches)}
_HINTS = typing.get_type_hints(Switches)
SWITCH_NAMES = frozenset(_FIELDS)

# The switches that fail_times counts and fail_keys restricts.
MISBEHAVIOUR = (
    "status",
    "html",
    "garbage",
    "hang",
    "truncate_after",
    "malformed_after",
    "error_event_after",
)

_CHOICES = {
    "reasoning_style": ("field", "reasoning", "think_tags"),
    "truncate_style": ("abort", "clean"),
}
_NON_NEGATIVE = {
    "first_byte_delay", "chunk_delay", "retry_after", "fail_times", "page_size",
    "truncate_after", "malformed_after", "error_event_after",
}


def validate(name: str, value: Any) -> Any:
    if name not in _FIELDS:
        known = ", ".join(sorted(SWITCH_NAMES))
        raise SwitchError(f"unknown switch {name!r}; known switches: {known}")
    hint = _HINTS[name]
    if not _conforms(value, hint):
        raise SwitchError(f"switch {name!r} must be {_describe(hint)}, not {value!r}")
    if name in _CHOICES and value not in _CHOICES[name]:
        raise SwitchError(f"switch {name!r} must be one of {_CHOICES[name]}, not {value!r}")
    if name in _NON_NEGATIVE and value is not None and value < 0:
        raise SwitchError(f"switch {name!r} must not be negative, not {value!r}")
    if name == "page_size" and value == 0:
        raise SwitchError("switch 'page_size' must be at least 1")
    if name == "status" and value is not None and not 100 <= value <= 599:
        raise SwitchError(f"switch 'status' must be an HTTP status, not {value!r}")
    # Floats arrive as ints from JSON and from hand-written tests alike.
    if hint in (float, float | None) and isinstance(value, int):
        return float(value)
    return list(value) if isinstance(value, list) else value


def _conforms(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_conforms(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("NoneType", "None")
