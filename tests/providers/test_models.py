"""Group and capability guesses from a model id."""

import pytest

from orchard.providers import infer_capabilities, infer_group, infer_model


@pytest.mark.parametrize(("model", "group"), [
    ("gpt-4o-mini", "gpt-4o"),
    ("gpt-4o", "gpt-4o"),
    ("gpt-3.5-turbo-0125", "gpt-3.5"),
    ("claude-3-5-sonnet-20241022", "claude-3-5"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("gemini-2.0-flash", "gemini-2.0"),
    ("models/gemini-1.5-pro-002", "gemini-1.5"),
    ("llama3.2:3b", "llama3.2"),
    ("gpt2", "gpt2"),
    ("o1-mini", "o1"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1"),
    ("qwen2.5-72b-instruct", "qwen2.5"),
    ("qwq-32b", "qwq"),
    ("text-embedding-3-small", "text-embedding-3"),
    ("mistral-large-latest", "mistral-large"),
])
def test_group(model, group):
    assert infer_group(model) == group


@pytest.mark.parametrize(("model", "caps"), [
    ("gpt2", ["text"]),
    ("gpt-4o-mini", ["text", "vision", "function_calling"]),
    ("o1-mini", ["text", "reasoning", "function_calling"]),
    ("o3", ["text", "vision", "reasoning", "function_calling"]),
    ("deepseek-r1:7b", ["text", "reasoning"]),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", ["text", "reasoning"]),
    ("qwq-32b", ["text", "reasoning"]),
    ("gemini-2.0-flash-thinking-exp", ["text", "vision", "reasoning", "function_calling"]),
    ("claude-3-5-sonnet-20241022", ["text", "vision", "function_calling"]),
    ("qwen2.5-vl-7b-instruct", ["text", "vision", "function_calling"]),
    ("llava:13b", ["text", "vision"]),
    ("text-embedding-3-small", ["embedding"]),
    ("nomic-embed-text", ["embedding"]),
    ("gemini-embedding-001", ["embedding"]),
    ("bge-reranker-v2-m3", ["rerank"]),
    ("gpt-4o-search-preview", ["text", "vision", "function_calling", "web_search"]),
])
def test_capabilities(model, caps):
    assert infer_capabilities(model) == caps


def test_infer_model_gives_both():
    assert infer_model("gpt-4o-mini") == ("gpt-4o", ["text", "vision", "function_calling"])
