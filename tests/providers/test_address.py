"""API address rules, per provider type: what the user typed → the URLs we call."""

import pytest

from orchard.errors import ProviderUnavailable
from orchard.providers import ProviderSettings, adapter_for
from orchard.providers.address import AddressError, has_version, openai_endpoints, without_query

# (type, address as typed, model, expected chat URL, expected models URL)
CASES = [
    # OpenAI-compatible: Cherry's worked example and its neighbours.
    ("openai", "http://localhost:8000/", "gpt2",
     "http://localhost:8000/v1/chat/completions", "http://localhost:8000/v1/models"),
    ("openai", "http://localhost:8000", "gpt2",
     "http://localhost:8000/v1/chat/completions", "http://localhost:8000/v1/models"),
    ("openai", "  http://localhost:11434/v1/  ", "llama3.2",
     "http://localhost:11434/v1/chat/completions", "http://localhost:11434/v1/models"),
    ("openai", "", "gpt-4o",
     "https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/models"),
    ("openai", "https://openrouter.ai/api/v1", "x",
     "https://openrouter.ai/api/v1/chat/completions", "https://openrouter.ai/api/v1/models"),
    ("openai", "https://ark.cn-beijing.volces.com/api/v3", "x",
     "https://ark.cn-beijing.volces.com/api/v3/chat/completions",
     "https://ark.cn-beijing.volces.com/api/v3/models"),
    ("openai", "https://example.com/v2/", "x",
     "https://example.com/v2/chat/completions", "https://example.com/v2/models"),
    # `#`: the address is the full endpoint, verbatim (Cherry's bug: it drops the # first).
    ("openai", "https://example.com/v1/chat/completions#", "x",
     "https://example.com/v1/chat/completions", "https://example.com/v1/models"),
    ("openai", "https://example.com/custom/generate#", "x",
     "https://example.com/custom/generate", None),
    ("openai", "https://example.com/openai/chat/completions#", "x",
     "https://example.com/openai/chat/completions", "https://example.com/openai/models"),
    # Already the full endpoint without `#`: taken as meant, never doubled.
    ("openai", "http://localhost:8080/v1/chat/completions", "x",
     "http://localhost:8080/v1/chat/completions", "http://localhost:8080/v1/models"),
    # Anthropic.
    ("anthropic", "", "claude-3-5-sonnet-20241022",
     "https://api.anthropic.com/v1/messages", "https://api.anthropic.com/v1/models"),
    ("anthropic", "https://proxy.example.com/", "c",
     "https://proxy.example.com/v1/messages", "https://proxy.example.com/v1/models"),
    ("anthropic", "https://proxy.example.com/anthropic/v1", "c",
     "https://proxy.example.com/anthropic/v1/messages", "https://proxy.example.com/anthropic/v1/models"),
    ("anthropic", "https://gw.example.com/claude/messages#", "c",
     "https://gw.example.com/claude/messages", "https://gw.example.com/claude/models"),
    # Gemini.
    ("gemini", "", "gemini-2.0-flash",
     "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
     "https://generativelanguage.googleapis.com/v1beta/models"),
    ("gemini", "https://proxy.example.com", "models/gemini-2.0-flash",
     "https://proxy.example.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
     "https://proxy.example.com/v1beta/models"),
    ("gemini", "https://proxy.example.com/v1/", "gemini-1.5-pro",
     "https://proxy.example.com/v1/models/gemini-1.5-pro:streamGenerateContent?alt=sse",
     "https://proxy.example.com/v1/models"),
    ("gemini", "https://gw.example.com/v1beta/models/{model}:streamGenerateContent?alt=sse#", "g",
     "https://gw.example.com/v1beta/models/g:streamGenerateContent?alt=sse",
     "https://gw.example.com/v1beta/models"),
    # Azure OpenAI: resource endpoint + deployment + api-version.
    ("azure-openai", "https://res.openai.azure.com/", "my-gpt4o",
     "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21", None),
    ("azure-openai", "https://res.openai.azure.com/openai", "my-gpt4o",
     "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21", None),
    ("azure-openai", "https://res.openai.azure.com/v1", "d",
     "https://res.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21", None),
    ("azure-openai", "https://res.openai.azure.com/openai/v1/", "d",
     "https://res.openai.azure.com/openai/v1/chat/completions", None),
    ("azure-openai", "https://gw.example.com/azure/chat#", "d",
     "https://gw.example.com/azure/chat", None),
]


@pytest.mark.parametrize(("type", "address", "model", "chat", "models"), CASES)
def test_endpoints(type, address, model, chat, models):
    ends = adapter_for(ProviderSettings(id="p", type=type, api_address=address)).endpoints(model)
    assert (ends.chat, ends.models) == (chat, models)


def test_azure_api_version_is_used():
    settings = ProviderSettings(id="p", type="azure-openai", api_address="https://r.openai.azure.com",
                                api_version="2025-01-01-preview")
    assert adapter_for(settings).endpoints("d").chat.endswith("?api-version=2025-01-01-preview")


def test_azure_without_address_is_unavailable_with_a_hint():
    with pytest.raises(ProviderUnavailable) as err:
        adapter_for(ProviderSettings(id="az", type="azure-openai")).endpoints("d")
    assert "openai.azure.com" in str(err.value) and err.value.hint


@pytest.mark.parametrize("address", ["localhost:8000", "ftp://example.com", "http://"])
def test_an_address_that_is_not_a_url_is_refused(address):
    with pytest.raises(AddressError):
        openai_endpoints(address)
    with pytest.raises(ProviderUnavailable) as err:
        adapter_for(ProviderSettings(id="p", type="openai", api_address=address)).endpoints(None)
    assert err.value.hint and "'p'" in err.value.message


@pytest.mark.parametrize(("url", "expected"), [
    ("http://h/v1", True), ("http://h/v1beta", True), ("http://h/api/v3", True),
    ("http://h/v2alpha1/x", True), ("http://h", False), ("http://h/api", False),
    ("http://h/openai", False), ("http://v1.example.com/x", False), ("http://h/vx", False),
])
def test_version_segment(url, expected):
    assert has_version(url) is expected


def test_urls_in_errors_lose_query_and_credentials():
    assert without_query("https://u:pw@h.example/v1/x?key=SECRET&a=1") == "https://h.example/v1/x"
