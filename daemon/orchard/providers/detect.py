"""Find OpenAI-compatible servers already running on this machine.

Probes the well-known local ports on 127.0.0.1 only — vLLM :8000, llama.cpp
:8080, Ollama :11434, LM Studio :1234 — all at once, each with a short
timeout, and returns those whose ``GET /v1/models`` answers like an
OpenAI-compatible server, with their models. Nothing beyond loopback is
ever probed.

``ORCHARD_DETECT_PORTS`` (``8000=vllm,8080=llama.cpp``) replaces the port
list; the tests use it to keep away from servers a developer may be running.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import httpx

WELL_KNOWN: dict[int, str] = {8000: "vllm", 8080: "llama.cpp", 11434: "ollama", 1234: "lm-studio"}
NAMES = {"vllm": "vLLM", "llama.cpp": "llama.cpp", "ollama": "Ollama", "lm-studio": "LM Studio"}
TIMEOUT = 1.0


@dataclass(frozen=True)
class Found:
    kind: str
    name: str
    api_address: str
    models: list[str]


def candidates() -> dict[int, str]:
    spec = os.environ.get("ORCHARD_DETECT_PORTS")
    if not spec:
        return dict(WELL_KNOWN)
    out = {}
    for item in spec.split(","):
        port, _, kind = item.partition("=")
        if port.strip().isdigit() and kind.strip() in NAMES:
            out[int(port)] = kind.strip()
    return out


def address(port: int) -> str:
    return f"http://127.0.0.1:{port}/"


async def detect() -> tuple[list[Found], list[str]]:
    """(servers that answered, every address probed)."""
    ports = candidates()
    async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        results = await asyncio.gather(*(_probe(http, port, kind) for port, kind in ports.items()))
    return [r for r in results if r is not None], [address(p) for p in ports]


async def _probe(http: httpx.AsyncClient, port: int, kind: str) -> Found | None:
    url = f"http://127.0.0.1:{port}/v1/models"
    try:
        response = await http.get(url)
        if response.status_code != 200:
            return None
        data = response.json().get("data")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    models = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    return Found(kind=kind, name=NAMES[kind], api_address=address(port), models=models)
