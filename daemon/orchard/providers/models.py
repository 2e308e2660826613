"""What a model id tells us: its group (family) and its likely capabilities.

Both are guesses from the id alone, shown when models are fetched and
overridable by the user. The tables are small on purpose; a wrong guess costs
a click, a huge table costs everyone who reads it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

CAPABILITIES = ("text", "vision", "reasoning", "function_calling", "embedding", "rerank", "web_search")

# A token that continues a family name: 3, 5, 4o, 2.0, 3.5 — but not a size
# (8b, 70b, 135m) or a date/snapshot (20241022, 0125).
_VERSION = re.compile(r"^\d+(\.\d+)*[a-z]?$")
_SIZE = re.compile(r"^\d+(\.\d+)?[bmk]$")
_NOT_A_NAME = {"latest", "preview", "instruct", "chat", "it", "exp"}


def _is_version(token: str) -> bool:
    return bool(_VERSION.match(token)) and not _SIZE.match(token) and len(token) <= 4


def base_id(model_id: str) -> str:
    """The model's own name: no `org/` or `models/` prefix, no `:tag`, lower case."""
    name = model_id.strip().lower().rsplit("/", 1)[-1]
    return name.split(":", 1)[0] or model_id.lower()


def infer_group(model_id: str) -> str:
    """The family a model belongs to, e.g. gpt-4o-mini → gpt-4o, claude-3-5-sonnet-… → claude-3-5.

    The first word of the id; a second word when the first has no version
    in it (text-embedding, claude-sonnet); then any version words that follow.
    """
    tokens = [t for t in re.split(r"[-_]", base_id(model_id)) if t]
    if not tokens:
        return model_id
    group = [tokens[0]]
    rest = tokens[1:]
    if (
        rest
        and not any(c.isdigit() for c in tokens[0])
        and not _SIZE.match(rest[0])
        and not (rest[0].isdigit() and len(rest[0]) > 4)
        and rest[0] not in _NOT_A_NAME
    ):
        group.append(rest.pop(0))
    while rest and _is_version(rest[0]):
        group.append(rest.pop(0))
    return "-".join(group)


# Each row: (pattern searched in the lower-cased id without org prefix, capability).
# Order does not matter; a model gets every capability whose pattern matches.
_TABLE: list[tuple[str, str]] = [
    # Reasoning: OpenAI o-series and gpt-5, R1 and its distills, QwQ, anything
    # "thinking"/"reasoner", and the families that think by default.
    (r"^o[1-9](\b|-|$)", "reasoning"),
    (r"^gpt-5", "reasoning"),
    (r"deepseek-r1|(^|-)r1(-|$)|deepseek-reasoner", "reasoning"),
    (r"qwq|qvq|thinking|reasoner|reasoning", "reasoning"),
    (r"gemini-(2\.5|[3-9])", "reasoning"),
    (r"claude-3-7|claude-(sonnet|opus)-4|claude-(opus|sonnet)-[4-9]", "reasoning"),
    (r"^qwen3|magistral", "reasoning"),
    # Vision: multimodal families, and ids that say so.
    (r"gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-4-vision|gpt-5|chatgpt-4o", "vision"),
    (r"^o[134](-|$)(?!.*mini)|^o[34]-mini", "vision"),
    (r"claude-3|claude-(sonnet|opus|haiku)-[4-9]", "vision"),
    (r"^gemini|^gemma-?3", "vision"),
    (r"vision|(^|-|\.)vl(-|$)|llava|pixtral|minicpm-v|qvq|moondream|internvl", "vision"),
    # Function calling: the API families documented to support tools.
    (r"^gpt-(3\.5-turbo|4|5)|^o[1-9]|chatgpt-4o", "function_calling"),
    (r"^claude-(3|sonnet|opus|haiku)", "function_calling"),
    (r"^gemini", "function_calling"),
    (r"mistral-(large|medium|small)|^ministral|^codestral|command-r", "function_calling"),
    (r"^qwen(2\.5|3)|^llama-?3\.[1-3]|deepseek-(chat|v3)|glm-4", "function_calling"),
    # Web search built into the model.
    (r"search|^sonar", "web_search"),
]
_COMPILED = [(re.compile(p), cap) for p, cap in _TABLE]


def infer_capabilities(model_id: str) -> list[str]:
    """Capabilities guessed from the id, in the order of :data:`CAPABILITIES`.

    Embedding and rerank models do only that; every other model does text,
    plus whatever the table finds.
    """
    name = base_id(model_id)
    if "rerank" in name:
        return ["rerank"]
    if "embed" in name or re.match(r"^(bge|gte|e5|jina-embeddings)(-|$)", name):
        return ["embedding"]
    found = {"text"} | {cap for rx, cap in _COMPILED if rx.search(name)}
    return [cap for cap in CAPABILITIES if cap in found]


class InferredModel(NamedTuple):
    group: str
    capabilities: list[str]


def infer_model(model_id: str) -> InferredModel:
    """Group and capabilities of a model id, together."""
    return InferredModel(infer_group(model_id), infer_capabilities(model_id))
