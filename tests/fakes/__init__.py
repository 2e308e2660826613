"""Fake AI providers: real HTTP servers on 127.0.0.1 that speak the OpenAI,
Anthropic, Gemini and Azure OpenAI wire formats, with switches for every way
a provider misbehaves, and a record of what they received.

Modules, each owning one thing:

- ``server``     ``FakeProvider``: one fake in a background thread
- ``remote``     ``RemoteFake``/``FakeProcess``: a fake in another process
- ``__main__``   the command line, ``python -m tests.fakes``
- ``switches``   every switch, its default and its validation
- ``state``      switches, recorded requests and disconnects, behind one lock
- ``transport``  HTTP, chunked streaming, noticing a client that left
- ``control``    the ``/_fake/`` endpoints
- ``answer``     the deterministic reply, its deltas and token counts
- ``common``     request/answer types and the ``Dialect`` base class
- ``openai``, ``azure``, ``anthropic``, ``gemini``: one wire format each
"""

from .remote import FakeProcess, RemoteFake
from .server import FAKE_TYPES, FakeProvider
from .switches import SWITCH_NAMES, Switches, SwitchError

__all__ = [
    "FakeProvider", "FakeProcess", "RemoteFake", "FAKE_TYPES",
    "Switches", "SWITCH_NAMES", "SwitchError",
]
