"""The fake providers, checked with plain httpx and httpx-sse as a client
would see them: streams parse, switches change what is on the wire, paging
walks every page, requests are recorded, and a client leaving is noticed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import aconnect_sse, connect_sse

from tests.fakes import FakeProcess, FakeProvider, SwitchError

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
CHAT = {"model": "gpt2", "messages": [{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": "hello there"}]}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=5) as c:
        yield c


@pytest.fixture
def openai() -> Iterator[FakeProvider]:
    with FakeProvider("openai") as fake:
        yield fake


@pytest.fixture
def anthropic() -> Iterator[FakeProvider]:
    with FakeProvider("anthropic") as fake:
        yield fake


@pytest.fixture
def gemini() -> Iterator[FakeProvider]:
    with FakeProvider("gemini") as fake:
        yield fake


@pytest.fixture
def azure() -> Iterator[FakeProvider]:
    with FakeProvider("azure-openai") as fake:
        yield fake


def openai_events(client: httpx.Client, url: str, body: dict, **kw) -> list[str]:
    with connect_sse(client, "POST", url, json=body, **kw) as source:
        assert source.response.status_code == 200
        return [sse.data for sse in source.iter_sse()]


def stream_body(**extra) -> dict:
    return {**CHAT, "stream": True, "stream_options": {"include_usage": True}, **extra}


# -- OpenAI --------------------------------------------------------------------


def test_openai_stream_has_role_deltas_finish_usage_and_done(openai, client):
    data = openai_events(client, openai.url + "/v1/chat/completions", stream_body())
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert deltas == ["You", " said:", " hello", " there"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    # Words are tokens: "be brief" + "hello there" in, "You said: hello there" out.
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}


def test_openai_usage_only_when_asked_and_allowed(openai, client):
    url = openai.url + "/v1/chat/completions"
    unasked = openai_events(client, url, {**CHAT, "stream": True})
    assert all("usage" not in json.loads(d) for d in unasked[:-1])
    openai.usage = False
    refused = openai_events(client, url, stream_body())
    assert all(not json.loads(d).get("usage") for d in refused[:-1])


def test_openai_non_streaming_and_max_tokens(openai, client):
    r = client.post(openai.url + "/v1/chat/completions", json={**CHAT, "max_tokens": 2})
    body = r.json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "You said:"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_openai_models_health_and_unknown_model(openai, client):
    assert client.get(openai.url + "/health").status_code == 200
    models = client.get(openai.url + "/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["gpt2", "gpt-4o-mini"]
    assert set(models["data"][0]) == {"id", "object", "owned_by", "created"}
    r = client.post(openai.url + "/v1/chat/completions", json={**CHAT, "model": "nope"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


def test_openai_keys(openai, client):
    url = openai.url + "/v1/models"
    openai.configure(required_key="sk-right", accepted_keys=["sk-other"])
    assert client.get(url).status_code == 401
    wrong = client.get(url, headers={"Authorization": "Bearer sk-wrong"})
    assert wrong.status_code == 401
    assert set(wrong.json()["error"]) == {"message", "type", "code", "param"}
    assert "sk-wrong" not in wrong.text
    for key in ("sk-right", "sk-other"):
        assert client.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    # vLLM's /health answers without a key.
    assert client.get(openai.url + "/health").status_code == 200


def test_forced_status_with_retry_after_then_fail_times(openai, client):
    openai.configure(status=429, retry_after=2, fail_times=2)
    url = openai.url + "/v1/chat/completions"
    for _ in range(2):
        r = client.post(url, json=CHAT)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        assert r.json()["error"]["type"] == "requests"
    assert client.post(url, json=CHAT).status_code == 200


def test_fail_keys_limits_the_failure_to_some_keys(openai, client):
    openai.configure(status=429, fail_keys=["sk-busy"])
    url = openai.url + "/v1/models"
    assert client.get(url, headers={"Authorization": "Bearer sk-busy"}).status_code == 429
    assert client.get(url, headers={"Authorization": "Bearer sk-free"}).status_code == 200


def test_reject_stream_options(openai, client):
    openai.reject_stream_options = True
    r = client.post(openai.url + "/v1/chat/completions", json=stream_body())
    assert r.status_code == 400
    assert "stream_options" in r.json()["error"]["message"]
    data = openai_events(client, openai.url + "/v1/chat/completions", {**CHAT, "stream": True})
    assert data[-1] == "[DONE]"


@pytest.mark.parametrize("style,field", [("field", "reasoning_content"), ("reasoning", "reasoning")])
def test_openai_reasoning_fields(openai, client, style, field):
    openai.configure(reasoning="Thinking hard.", reasoning_style=style)
    data = openai_events(client, openai.url + "/v1/chat/completions", stream_body())
    deltas = [json.loads(d)["choices"][0]["delta"] for d in data[1:-3]]
    assert "".join(d.get(field, "") for d in deltas) == "Thinking hard."
    assert "".join(d.get("content", "") for d in deltas) == "You said: hello there"
    last = max(i for i, d in enumerate(deltas) if field in d)
    assert all("content" in d for d in deltas[last + 1:])
    assert json.loads(data[-2])["usage"]["completion_tokens_details"] == {"reasoning_tokens": 2}


def test_openai_think_tags_are_cut_awkwardly(openai, client):
    openai.configure(reasoning=True, reasoning_style="think_tags")
    data = openai_events(client, openai.url + "/v1/chat/completions", {**CHAT, "stream": True})
    contents = [json.loads(d)["choices"][0]["delta"].get("content") for d in data[1:-2]]
    assert contents[:2] == ["<thi", "nk>"]
    assert "".join(contents) == "<think>Let me think about that.</think>You said: hello there"


def test_reply_switch(openai, client):
    openai.reply = "One two three four five"
    data = openai_events(client, openai.url + "/v1/chat/completions", {**CHAT, "stream": True})
    contents = [json.loads(d)["choices"][0]["delta"].get("content") for d in data[1:-2]]
    assert "".join(contents) == "One two three four five"
    assert len(contents) == 5


def test_truncate_abort_breaks_the_body_and_clean_ends_without_done(openai, client):
    url = openai.url + "/v1/chat/completions"
    openai.truncate_after = 3
    with pytest.raises(httpx.RemoteProtocolError):
        openai_events(client, url, stream_body())
    openai.truncate_style = "clean"
    data = openai_events(client, url, stream_body())
    assert len(data) == 3 and "[DONE]" not in data


def test_malformed_and_error_events(openai, client):
    url = openai.url + "/v1/chat/completions"
    openai.malformed_after = 2
    data = openai_events(client, url, stream_body())
    with pytest.raises(ValueError):
        json.loads(data[2])
    assert data[-1] == "[DONE]"
    openai.configure(malformed_after=None, error_event_after=2)
    data = openai_events(client, url, stream_body())
    assert len(data) == 3
    assert json.loads(data[2])["error"]["type"] == "server_error"


def test_html_and_garbage(openai, client):
    openai.html = True
    r = client.get(openai.url + "/v1/models")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    openai.configure(html=False, garbage=True)
    r = client.post(openai.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        r.json()


def test_chunks_arrive_as_they_are_sent(openai, client):
    openai.configure(chunk_delay=0.05, first_byte_delay=0.1)
    start = time.monotonic()
    arrivals = []
    with connect_sse(client, "POST", openai.url + "/v1/chat/completions",
                     json=stream_body()) as source:
        for _ in source.iter_sse():
            arrivals.append(time.monotonic() - start)
    assert arrivals[0] >= 0.1
    # 8 frames, 7 gaps of 50 ms: the first must come long before the last.
    assert arrivals[-1] - arrivals[0] >= 0.3
    assert all(b > a for a, b in zip(arrivals, arrivals[1:]))


async def test_client_leaving_mid_stream_is_recorded(openai):
    openai.chunk_delay = 0.05
    async with httpx.AsyncClient(trust_env=False) as client:
        async with aconnect_sse(client, "POST", openai.url + "/v1/chat/completions",
                                json=stream_body()) as source:
            seen = 0
            async for _ in source.aiter_sse():
                seen += 1
                if seen == 2:
                    break
    gone = await openai.wait_for_disconnect_async(2)
    assert gone is not None
    assert gone["stage"] == "stream" and gone["frames_sent"] >= 2
    assert gone["path"] == "/v1/chat/completions"
    assert len(openai.disconnects) == 1


def test_hang_is_left_by_a_client_timeout(openai, client):
    openai.hang = True
    with pytest.raises(httpx.ReadTimeout):
        client.get(openai.url + "/v1/models", timeout=0.2)
    gone = openai.wait_for_disconnect(2)
    assert gone is not None and gone["stage"] == "hang"


def test_requests_are_recorded(openai, client):
    client.post(openai.url + "/v1/chat/completions?x=1", json=CHAT,
                headers={"Authorization": "Bearer sk-1", "X-Custom": "yes"})
    (req,) = openai.requests
    assert req["method"] == "POST" and req["path"] == "/v1/chat/completions"
    assert req["query"] == {"x": "1"}
    assert req["headers"]["authorization"] == "Bearer sk-1"
    assert req["headers"]["x-custom"] == "yes"
    assert req["body"] == CHAT


def test_switches_are_checked(openai):
    with pytest.raises(SwitchError, match="unknown switch"):
        openai.configure(stauts=500)
    with pytest.raises(SwitchError, match="chunk_delay"):
        openai.configure(chunk_delay="fast")
    with pytest.raises(AttributeError):
        openai.not_a_switch = 1
    assert openai.chunk_delay == 0.0


# -- Anthropic -------------------------------------------------------------------

ANTHROPIC_CHAT = {"model": "claude-3-5-haiku-20241022", "max_tokens": 100, "stream": True,
                  "system": "be brief", "messages": [{"role": "user", "content": "hello there"}]}


def anthropic_events(client: httpx.Client, fake: FakeProvider, body: dict) -> list[tuple[str, dict]]:
    with connect_sse(client, "POST", fake.url + "/v1/messages", json=body,
                     headers=ANTHROPIC_HEADERS) as source:
        assert source.response.status_code == 200
        return [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]


def test_anthropic_stream_event_order_and_usage(anthropic, client):
    events = anthropic_events(client, anthropic, ANTHROPIC_CHAT)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 4 + [
        "content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 4
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "You said: hello there"
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"] == {"output_tokens": 4}


def test_anthropic_thinking_block(anthropic, client):
    anthropic.reasoning = True
    events = anthropic_events(client, anthropic, ANTHROPIC_CHAT)
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == "Let me think about that."
    assert [d["type"] for d in deltas].count("signature_delta") == 1


def test_anthropic_required_fields_and_headers(anthropic, client):
    url = anthropic.url + "/v1/messages"
    body = {k: v for k, v in ANTHROPIC_CHAT.items() if k != "max_tokens"}
    r = client.post(url, json=body, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "max_tokens: Field required"}}
    r = client.post(url, json=ANTHROPIC_CHAT)
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    anthropic.required_key = "sk-ant"
    r = client.post(url, json=ANTHROPIC_CHAT, headers={**ANTHROPIC_HEADERS, "x-api-key": "bad"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    ok = client.post(url, json={**ANTHROPIC_CHAT, "stream": False},
                     headers={**ANTHROPIC_HEADERS, "x-api-key": "sk-ant"})
    assert ok.json()["content"] == [{"type": "text", "text": "You said: hello there"}]


def test_anthropic_error_event_in_a_200_stream(anthropic, client):
    anthropic.error_event_after = 3
    events = anthropic_events(client, anthropic, ANTHROPIC_CHAT)
    assert events[-1] == ("error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}})


def test_anthropic_model_pages(anthropic, client):
    anthropic.models = [f"claude-{i}" for i in range(5)]
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"after_id": after} if after else {})}
        page = client.get(anthropic.url + "/v1/models", params=params,
                          headers=ANTHROPIC_HEADERS).json()
        pages += 1
        seen += [m["id"] for m in page["data"]]
        assert page["first_id"] == page["data"][0]["id"]
        assert all(m["type"] == "model" and m["display_name"] for m in page["data"])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == anthropic.models and pages == 3
    anthropic.page_size = 1
    page = client.get(anthropic.url + "/v1/models", headers=ANTHROPIC_HEADERS).json()
    assert len(page["data"]) == 1 and page["has_more"]


# -- Gemini ----------------------------------------------------------------------

GEMINI_CHAT = {"systemInstruction": {"parts": [{"text": "be brief"}]},
               "contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


def gemini_stream(client: httpx.Client, fake: FakeProvider, **kw) -> list[dict]:
    url = fake.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    with connect_sse(client, "POST", url, params={"alt": "sse"}, json=GEMINI_CHAT, **kw) as source:
        assert source.response.status_code == 200
        return [json.loads(sse.data) for sse in source.iter_sse()]


def test_gemini_stream_with_thoughts_and_usage(gemini, client):
    gemini.reasoning = "Hmm, yes."
    chunks = gemini_stream(client, gemini)
    parts = [c["candidates"][0]["content"]["parts"][0] for c in chunks]
    assert "".join(p["text"] for p in parts if p.get("thought")) == "Hmm, yes."
    assert "".join(p["text"] for p in parts if not p.get("thought")) == "You said: hello there"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == {"promptTokenCount": 4, "candidatesTokenCount": 4,
                                           "totalTokenCount": 10, "thoughtsTokenCount": 2}
    assert chunks[-1]["modelVersion"] == "gemini-2.5-flash"


def test_gemini_keys_by_header_or_query(gemini, client):
    gemini.required_key = "AIza-good"
    url = gemini.url + "/v1beta/models"
    assert client.get(url).status_code == 403
    bad = client.get(url, headers={"x-goog-api-key": "AIza-bad"})
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "API key not valid" in bad.json()["error"]["message"]
    assert client.get(url, headers={"x-goog-api-key": "AIza-good"}).status_code == 200
    assert client.get(url, params={"key": "AIza-good"}).status_code == 200


def test_gemini_unknown_model_and_non_streaming(gemini, client):
    r = client.post(gemini.url + "/v1beta/models/gemini-0:generateContent", json=GEMINI_CHAT)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    r = client.post(gemini.url + "/v1beta/models/gemini-2.5-pro:generateContent", json=GEMINI_CHAT)
    assert r.json()["candidates"][0]["content"]["parts"] == [{"text": "You said: hello there"}]


def test_gemini_model_pages(gemini, client):
    gemini.models = [f"gemini-{i}" for i in range(5)]
    names, token = [], None
    while True:
        params = {"pageSize": 2, **({"pageToken": token} if token else {})}
        page = client.get(gemini.url + "/v1beta/models", params=params).json()
        names += [m["name"] for m in page["models"]]
        assert all("generateContent" in m["supportedGenerationMethods"] for m in page["models"])
        token = page.get("nextPageToken")
        if not token:
            break
    assert names == [f"models/gemini-{i}" for i in range(5)]


def test_gemini_error_inside_the_stream(gemini, client):
    gemini.error_event_after = 1
    chunks = gemini_stream(client, gemini)
    assert chunks[-1]["error"]["status"] == "UNAVAILABLE"


# -- Azure OpenAI ----------------------------------------------------------------

AZURE_PATH = "/openai/deployments/gpt-4o-mini/chat/completions"


def test_azure_stream_starts_with_prompt_filter_results(azure, client):
    azure.required_key = "az-key"
    data = openai_events(client, azure.url + AZURE_PATH, stream_body(),
                         params={"api-version": "2024-10-21"}, headers={"api-key": "az-key"})
    first = json.loads(data[0])
    assert first["choices"] == [] and first["prompt_filter_results"]
    assert json.loads(data[1])["choices"][0]["delta"] == {"role": "assistant"}
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2])["usage"]["total_tokens"] == 8


def test_azure_errors(azure, client):
    assert client.post(azure.url + AZURE_PATH, json=CHAT).json() == {
        "error": {"code": "404", "message": "Resource not found"}}
    r = client.post(azure.url + "/openai/deployments/other/chat/completions",
                    params={"api-version": "2024-10-21"}, json=CHAT)
    assert r.status_code == 404 and r.json()["error"]["code"] == "DeploymentNotFound"
    azure.required_key = "az-key"
    r = client.post(azure.url + AZURE_PATH, params={"api-version": "2024-10-21"}, json=CHAT,
                    headers={"api-key": "wrong"})
    assert r.status_code == 401


def test_azure_v1_surface(azure, client):
    r = client.post(azure.url + "/openai/v1/chat/completions", json={**CHAT, "model": "gpt-4o-mini"})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "You said: hello there"


# -- control over HTTP, and the process ------------------------------------------


def test_control_endpoints(openai, client):
    control = openai.url + "/_fake/"
    r = client.post(control + "config", json={"status": 503, "fail_times": 1})
    assert r.json()["switches"]["status"] == 503
    assert client.get(openai.url + "/v1/models").status_code == 503
    assert client.get(openai.url + "/v1/models").status_code == 200
    assert len(client.get(control + "requests").json()["requests"]) == 2
    assert client.post(control + "config", json={"nope": 1}).status_code == 400
    assert client.get(control + "disconnects").json() == {"count": 0, "disconnects": []}
    client.post(control + "reset")
    assert client.get(control + "requests").json()["requests"] == []
    assert client.get(control + "config").json()["switches"]["status"] is None


def test_process_prints_ready_obeys_control_and_stops_on_sigterm(client):
    with FakeProcess("anthropic", models=["claude-x"], required_key="k") as fake:
        assert fake.url.startswith("http://127.0.0.1:")
        assert fake.switches["models"] == ["claude-x"]
        fake.configure(chunk_delay=0.05)
        headers = {**ANTHROPIC_HEADERS, "x-api-key": "k"}
        with client.stream("POST", fake.url + "/v1/messages", headers=headers,
                           json={**ANTHROPIC_CHAT, "model": "claude-x"}) as r:
            next(r.iter_lines())
        gone = fake.wait_for_disconnect(2)
        assert gone is not None and gone["stage"] == "stream"
        assert fake.requests[0]["headers"]["x-api-key"] == "k"
        process = fake.process
    assert process.returncode == 0
