"""Pure translation, per provider type, on the providers' documented examples. No network."""

import json

import pytest

from orchard.errors import ProviderError
from orchard.providers import (
    ChatRequest, Finish, Message, ProviderSettings, ReasoningDelta, TextDelta, Usage, adapter_for,
)
from orchard.providers.base import MalformedChunk


def adapter(type, address=""):
    if type == "azure-openai" and not address:
        address = "https://res.openai.azure.com"
    return adapter_for(ProviderSettings(id="p", type=type, api_address=address))


def run(ad, frames):
    """Feed (event, data) frames; return all events including the end-of-stream ones."""
    state = ad.new_state()
    out = []
    for event, data in frames:
        out += ad.parse_stream(event, data, state)
        if state.done:
            break
    assert ad.complete(state)
    return out + ad.end_stream(state)


def text(events, kind=TextDelta):
    return "".join(e.text for e in events if isinstance(e, kind))


REQ = ChatRequest(
    model="m",
    messages=[Message("user", "Hello"), Message("assistant", "Hi!"), Message("user", "How are you?")],
    system="Be brief.",
)

# -- request bodies -------------------------------------------------------------------


def test_openai_body_sends_parameters_only_when_set():
    url, headers, body = adapter("openai").build_chat(REQ)
    assert url == "https://api.openai.com/v1/chat/completions"
    assert body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "How are you?"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    req = ChatRequest(model="m", messages=[Message("user", "x")], temperature=0.0, top_p=0.5, max_tokens=7)
    _, _, body = adapter("openai").build_chat(req, stream_options=False)
    assert "stream_options" not in body
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.0, 0.5, 7)


def test_auth_headers_per_type_and_none_for_an_empty_key():
    assert adapter("openai").auth_headers("k") == {"Authorization": "Bearer k"}
    assert adapter("anthropic").auth_headers("k") == {"x-api-key": "k"}
    assert adapter("gemini").auth_headers("k") == {"x-goog-api-key": "k"}
    assert adapter("azure-openai").auth_headers("k") == {"api-key": "k"}
    for type in ("openai", "anthropic", "gemini", "azure-openai"):
        assert adapter(type).auth_headers("") == {}


def test_anthropic_body_has_top_level_system_and_default_max_tokens():
    req = ChatRequest(model="claude-3-5-sonnet-20241022",
                      messages=[Message("system", "Use French."), Message("user", "Hello")],
                      system="Be brief.", temperature=1.0)
    url, headers, body = adapter("anthropic").build_chat(req)
    assert url == "https://api.anthropic.com/v1/messages"
    assert headers["anthropic-version"] == "2023-06-01"
    assert body == {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": True,
        "system": "Be brief.\n\nUse French.",
        "temperature": 1.0,
    }
    _, _, body = adapter("anthropic").build_chat(ChatRequest(model="c", messages=[], max_tokens=10))
    assert body["max_tokens"] == 10 and "system" not in body and "top_p" not in body


def test_gemini_body_uses_contents_system_instruction_and_generation_config():
    req = ChatRequest(model="gemini-2.0-flash", messages=REQ.messages, system="Be brief.",
                      temperature=0.2, max_tokens=100)
    url, _, body = adapter("gemini").build_chat(req)
    assert url.endswith("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hello"}]},
            {"role": "model", "parts": [{"text": "Hi!"}]},
            {"role": "user", "parts": [{"text": "How are you?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 100},
    }
    _, _, body = adapter("gemini").build_chat(ChatRequest(model="g", messages=[Message("user", "x")]))
    assert set(body) == {"contents"}


def test_azure_body_is_openai_at_the_deployment_url():
    url, _, body = adapter("azure-openai").build_chat(REQ)
    assert url == "https://res.openai.azure.com/openai/deployments/m/chat/completions?api-version=2024-10-21"
    assert body["stream_options"] == {"include_usage": True} and body["model"] == "m"


# -- streams ---------------------------------------------------------------------------

def chunk(delta=None, finish=None, **extra):
    obj = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
           "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
           "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]}
    obj.update(extra)
    return ("message", json.dumps(obj))


OPENAI_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello"}),
    chunk({"content": " there"}),
    chunk({}, "stop"),
    ("message", json.dumps({"id": "chatcmpl-123", "choices": [],
                            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})),
    ("message", "[DONE]"),
]


def test_openai_stream_to_events():
    assert run(adapter("openai"), OPENAI_STREAM) == [
        TextDelta("Hello"), TextDelta(" there"), Usage(9, 2), Finish("stop")]


def test_openai_stream_without_usage_yields_no_usage_event():
    events = run(adapter("openai"), [chunk({"content": "Hi"}), chunk({}, "length"), ("message", "[DONE]")])
    assert events == [TextDelta("Hi"), Finish("length")]


def test_openai_stream_without_done_but_with_finish_is_complete():
    ad = adapter("openai")
    state = ad.new_state()
    ad.parse_stream("message", chunk({"content": "Hi"})[1], state)
    assert not ad.complete(state)
    ad.parse_stream("message", chunk({}, "stop")[1], state)
    assert ad.complete(state)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_openai_reasoning_fields(field):
    events = run(adapter("openai"), [
        chunk({field: "Let me"}), chunk({field: " think."}), chunk({"content": "42"}),
        chunk({}, "stop"), ("message", "[DONE]")])
    assert text(events, ReasoningDelta) == "Let me think." and text(events) == "42"


def test_openai_think_tags_split_across_chunks():
    pieces = ["\n<th", "ink>\nThe user", " greets.</thi", "nk>\n\nHello", "!"]
    events = run(adapter("openai"), [chunk({"content": p}) for p in pieces] + [chunk({}, "stop")])
    assert text(events, ReasoningDelta) == "The user greets."
    assert text(events) == "Hello!"


def test_azure_prompt_filter_chunk_is_skipped():
    first = ("message", json.dumps({
        "choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
            "hate": {"filtered": False, "severity": "safe"}}}]}))
    events = run(adapter("azure-openai"), [first] + OPENAI_STREAM)
    assert events == [TextDelta("Hello"), TextDelta(" there"), Usage(9, 2), Finish("stop")]


def test_openai_error_inside_the_stream_raises():
    data = json.dumps({"error": {"message": "The server is overloaded", "type": "server_error"}})
    ad = adapter("openai")
    with pytest.raises(ProviderError) as err:
        ad.parse_stream("message", data, ad.new_state())
    assert err.value.kind == "server_error" and "overloaded" in err.value.data["providerMessage"]


def test_malformed_chunk_raises_malformed():
    ad = adapter("openai")
    with pytest.raises(MalformedChunk):
        ad.parse_stream("message", '{"choices": [{"delta": {"content": "oo', ad.new_state())


def sse(event, obj):
    return (event, json.dumps(obj))


ANTHROPIC_STREAM = [
    sse("message_start", {"type": "message_start", "message": {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant",
        "content": [], "model": "claude-sonnet-4-20250514", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "thinking", "thinking": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "thinking_delta", "thinking": "Let me solve this"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse("ping", {"type": "ping"}),
    sse("content_block_start", {"type": "content_block_start", "index": 1,
                                "content_block": {"type": "text", "text": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "text_delta", "text": "Hello"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "text_delta", "text": "!"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
    sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                          "usage": {"output_tokens": 15}}),
    sse("message_stop", {"type": "message_stop"}),
]


def test_anthropic_stream_with_thinking_and_usage():
    assert run(adapter("anthropic"), ANTHROPIC_STREAM) == [
        ReasoningDelta("Let me solve this"), TextDelta("Hello"), TextDelta("!"),
        Usage(25, 15), Finish("stop")]


def test_anthropic_stream_without_message_stop_is_incomplete():
    ad = adapter("anthropic")
    state = ad.new_state()
    for event, data in ANTHROPIC_STREAM[:8]:
        ad.parse_stream(event, data, state)
    assert not ad.complete(state)


def test_anthropic_max_tokens_is_length():
    events = run(adapter("anthropic"), ANTHROPIC_STREAM[:-2] + [
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                              "usage": {"output_tokens": 1}}),
        sse("message_stop", {"type": "message_stop"})])
    assert events[-1] == Finish("length")


def test_anthropic_overloaded_error_event():
    ad = adapter("anthropic")
    with pytest.raises(ProviderError) as err:
        ad.parse_stream("error", json.dumps(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}), ad.new_state())
    assert err.value.kind == "server_error" and err.value.data["providerMessage"] == "Overloaded"
    with pytest.raises(ProviderError) as err:
        ad.parse_stream("error", json.dumps(
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}), ad.new_state())
    assert err.value.kind == "rate_limited"


GEMINI_STREAM = [
    ("message", json.dumps({"candidates": [{"content": {"parts": [
        {"text": "**Considering the greeting**", "thought": True}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash"})),
    ("message", json.dumps({"candidates": [{"content": {"parts": [{"text": "Hello"}], "role": "model"},
                                            "index": 0}],
                            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 1,
                                              "totalTokenCount": 9}})),
    ("message", json.dumps({"candidates": [{"content": {"parts": [{"text": " there!"}], "role": "model"},
                                            "finishReason": "STOP", "index": 0}],
                            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3,
                                              "totalTokenCount": 11}})),
]


def test_gemini_stream_with_thought_parts_and_last_usage():
    assert run(adapter("gemini"), GEMINI_STREAM) == [
        ReasoningDelta("**Considering the greeting**"), TextDelta("Hello"), TextDelta(" there!"),
        Usage(8, 3), Finish("stop")]


def test_gemini_thought_tokens_count_as_output():
    ad = adapter("gemini")
    state = ad.new_state()
    ad.parse_stream("message", json.dumps({"candidates": [{"content": {"parts": [{"text": "x"}]},
        "finishReason": "MAX_TOKENS"}], "usageMetadata": {"promptTokenCount": 3,
        "candidatesTokenCount": 1, "thoughtsTokenCount": 20}}), state)
    assert ad.end_stream(state) == [Usage(3, 21), Finish("length")]


def test_gemini_stream_without_finish_reason_is_incomplete():
    ad = adapter("gemini")
    state = ad.new_state()
    ad.parse_stream(*GEMINI_STREAM[1], state)
    assert not ad.complete(state)


def test_gemini_blocked_prompt_finishes_with_content_filter():
    events = run(adapter("gemini"), [("message", json.dumps(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}))])
    assert events == [Usage(4, None), Finish("content_filter")]


def test_gemini_error_in_stream():
    ad = adapter("gemini")
    with pytest.raises(ProviderError) as err:
        ad.parse_stream("message", json.dumps({"error": {"code": 429, "message": "Resource has been exhausted",
                                                         "status": "RESOURCE_EXHAUSTED"}}), ad.new_state())
    assert err.value.kind == "rate_limited"


# -- error bodies ------------------------------------------------------------------------

ERRORS = [
    ("openai", 401, {"error": {"message": "Incorrect API key provided: sk-abc***xyz.", "type": "invalid_request_error",
                               "param": None, "code": "invalid_api_key"}}, "Incorrect API key provided: sk-abc***xyz."),
    ("openai", 400, {"object": "error", "message": "The model `gpt3` does not exist.", "type": "NotFoundError",
                     "param": None, "code": 404}, "The model `gpt3` does not exist."),  # vLLM
    ("openai", 422, {"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options"],
                                 "msg": "Extra inputs are not permitted"}]}, "stream_options: Extra inputs are not permitted"),
    ("openai", 404, {"error": "model \"llama9\" not found, try pulling it first"},
     "model \"llama9\" not found, try pulling it first"),  # Ollama
    ("anthropic", 401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
     "invalid x-api-key"),
    ("gemini", 400, [{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                "status": "INVALID_ARGUMENT"}}], "API key not valid. Please pass a valid API key."),
    ("azure-openai", 404, {"error": {"code": "DeploymentNotFound", "message":
                                     "The API deployment for this resource does not exist."}},
     "The API deployment for this resource does not exist."),
]


@pytest.mark.parametrize(("type", "status", "body", "message"), ERRORS)
def test_error_bodies_to_messages(type, status, body, message):
    assert adapter(type).parse_error(status, json.dumps(body).encode(), "application/json") == message


def test_html_error_gives_its_title_and_text_gives_its_text():
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    assert adapter("openai").parse_error(502, page, "text/html") == "502 Bad Gateway"
    assert adapter("openai").parse_error(404, b"404 page not found\n", "text/plain") == "404 page not found"
    assert adapter("openai").parse_error(500, b"", "") is None


# -- model lists -------------------------------------------------------------------------

def test_openai_model_list():
    models, cursor = adapter("openai").parse_models({"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1686935002, "owned_by": "system"},
        {"id": "text-embedding-3-small", "object": "model", "owned_by": "system"}]})
    assert cursor is None
    assert [(m.id, m.group, m.capabilities, m.owned_by) for m in models] == [
        ("gpt-4o-mini", "gpt-4o", ["text", "vision", "function_calling"], "system"),
        ("text-embedding-3-small", "text-embedding-3", ["embedding"], "system")]


def test_openai_model_list_that_is_not_a_list_is_malformed():
    with pytest.raises(MalformedChunk):
        adapter("openai").parse_models({"detail": "Not Found"})


def test_anthropic_model_pages():
    ad = adapter("anthropic")
    url, headers = ad.models_request(None)
    assert url == "https://api.anthropic.com/v1/models?limit=100" and headers["anthropic-version"]
    url, _ = ad.models_request("claude-3-5-haiku-20241022")
    assert url.endswith("?limit=100&after_id=claude-3-5-haiku-20241022")
    models, cursor = ad.parse_models({"data": [
        {"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
         "created_at": "2025-05-22T00:00:00Z"}],
        "has_more": True, "first_id": "claude-sonnet-4-20250514", "last_id": "claude-sonnet-4-20250514"})
    assert cursor == "claude-sonnet-4-20250514"
    assert (models[0].name, models[0].group) == ("Claude Sonnet 4", "claude-sonnet-4")
    assert ad.parse_models({"data": [], "has_more": False, "last_id": None})[1] is None


def test_gemini_model_pages_strip_prefix_and_use_generation_methods():
    ad = adapter("gemini")
    assert ad.models_request(None)[0].endswith("/v1beta/models?pageSize=100")
    assert ad.models_request("tok en")[0].endswith("/v1beta/models?pageSize=100&pageToken=tok+en")
    models, cursor = ad.parse_models({"models": [
        {"name": "models/gemini-2.0-flash", "displayName": "Gemini 2.0 Flash",
         "supportedGenerationMethods": ["generateContent", "countTokens"]},
        {"name": "models/text-embedding-004", "displayName": "Text Embedding 004",
         "supportedGenerationMethods": ["embedContent"]}], "nextPageToken": "Chdtb2RlbHMv"})
    assert cursor == "Chdtb2RlbHMv"
    assert [(m.id, m.capabilities) for m in models] == [
        ("gemini-2.0-flash", ["text", "vision", "function_calling"]),
        ("text-embedding-004", ["embedding"])]
    assert ad.parse_models({"models": []})[1] is None
