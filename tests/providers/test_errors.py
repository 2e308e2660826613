"""Classifying a provider's refusal (pure): kind, hint, URL without query, no key."""

import json

import httpx
import pytest

from orchard.providers.http import Call, names_unknown_model, retry_after_seconds, status_error

KEY = "sk-live-4f8a9c2b7d1e6f3a0b5c"


def call(**kw):
    base = dict(provider_id="vllm", url="http://localhost:8000/v1/chat/completions?api-version=1",
                model="gpt2", secret=KEY, key_label="sk-…3a0b5c")
    return Call(**(base | kw))


@pytest.mark.parametrize(("status", "message", "kind", "hint_words"), [
    (401, "Incorrect API key provided", "bad_key", ["check the API key", "orchard provider set-key vllm"]),
    (403, "Forbidden", "bad_key", ["orchard provider set-key vllm"]),
    (400, "API key not valid. Please pass a valid API key.", "bad_key", ["check the API key"]),
    (404, "Invalid URL (POST /v1/v1/chat/completions)", "wrong_address",
     ["check the API address", "http://localhost:8000/v1/chat/completions"]),
    (404, "404 page not found", "wrong_address", ["check the API address"]),
    (404, None, "wrong_address", ["check the API address"]),
    (404, "The model `gpt2` does not exist.", "unknown_model", ["model"]),
    (404, "model \"gpt2\" not found, try pulling it first", "unknown_model", ["model"]),
    (400, "The model `gpt3` does not exist.", "unknown_model", ["model"]),
    (400, "max_tokens is too large for gpt2", "bad_request", ["did not accept"]),
    (422, "temperature: Input should be less than or equal to 2", "bad_request", ["did not accept"]),
    (429, "Rate limit reached", "rate_limited", ["rate limited; retry after 7 s"]),
    (500, "boom", "server_error", ["try again"]),
    (503, "overloaded", "server_error", ["try again"]),
])
def test_status_classification(status, message, kind, hint_words):
    err = status_error(call(), status, message, retry_after=7 if status == 429 else None)
    assert err.kind == kind
    assert "'vllm'" in err.message and f"HTTP {status}" in err.message
    assert err.data["status"] == status
    assert err.data["url"] == "http://localhost:8000/v1/chat/completions"  # no query string
    for word in hint_words:
        assert word in err.hint
    if message:
        assert err.data["providerMessage"] == message


def test_rate_limit_carries_retry_after():
    err = status_error(call(), 429, None, retry_after=12.0)
    assert err.data["retryAfter"] == 12.0 and "12 s" in err.hint
    assert "wait" in status_error(call(), 429, None).hint


def test_empty_key_401_says_a_key_is_needed():
    err = status_error(call(secret="", key_label="(no key)"), 401, "missing key")
    assert err.kind == "bad_key" and "none is set" in err.message


def test_azure_unknown_deployment():
    err = status_error(call(azure=True, model="my-dep"), 404,
                       "The API deployment for this resource does not exist.")
    assert err.kind == "unknown_model" and "deployment" in err.message and "Azure" in err.hint


def test_gemini_unknown_model():
    msg = "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent."
    assert status_error(call(model="gemini-9"), 404, msg).kind == "unknown_model"


def test_redirect_is_reported_not_followed():
    err = status_error(call(), 307, None, location="https://other.example/v1/chat?token=x")
    assert err.kind == "wrong_address" and "https://other.example/v1/chat" in err.hint
    assert "token" not in str(err)


def test_the_key_is_scrubbed_from_everything():
    err = status_error(call(), 401, f"Incorrect API key provided: {KEY}. Try again.")
    blob = str(err) + repr(err) + json.dumps(err.to_data()) + err.message
    assert KEY not in blob and "[key]" in err.data["providerMessage"]


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0 + 1e-9


def test_unknown_model_detection_is_precise():
    assert names_unknown_model("The model `x` does not exist", "x", 400)
    assert not names_unknown_model("Unrecognized request argument supplied: stream_options", "x", 400)
    assert not names_unknown_model("max_tokens too large for model x", "x", 400)
    assert names_unknown_model("x", "x", 404)


async def test_gemini_retry_delay_in_the_body_counts_as_retry_after():
    from orchard.providers.http import response_error

    body = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}
    response = httpx.Response(429, json=body)
    err = await response_error(response, call(), lambda s, b, c: "Resource has been exhausted")
    assert err.kind == "rate_limited" and err.data["retryAfter"] == 7.0


async def test_response_error_scrubs_the_key_and_reads_retry_after_header():
    from orchard.providers.http import response_error

    response = httpx.Response(429, json={"error": {"message": f"key {KEY} is over quota"}},
                              headers={"Retry-After": "3"})
    err = await response_error(response, call(), lambda s, b, c: f"key {KEY} is over quota")
    assert err.data["retryAfter"] == 3.0 and KEY not in str(err.to_data())
