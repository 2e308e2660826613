"""The command line for people: `orchard provider|model|config ...` through a real daemon."""

from __future__ import annotations

import json
import tomllib

from tests.conftest import Daemon

SECRET = "sk-cli-abcdefghijklmnop0123SECRET77"


def ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_add_the_vllm_provider_as_typed(daemon: Daemon) -> None:
    out = ok(daemon.cli("provider", "add", "vLLM", "--type", "openai", "--url", "http://localhost:8000/"))
    assert "Added provider vLLM (vllm)" in out
    assert "http://localhost:8000/v1/chat/completions" in out
    ok(daemon.cli("model", "add", "vLLM", "gpt2"))
    listing = ok(daemon.cli("provider", "list"))
    assert "vllm" in listing and "gpt2" in listing and "none" in listing
    data = json.loads(ok(daemon.cli("provider", "list", "--json")))
    assert data["providers"][0]["models"][0]["id"] == "gpt2"


def test_a_key_is_never_taken_from_the_command_line(daemon: Daemon) -> None:
    ok(daemon.cli("provider", "add", "OpenAI", "--type", "openai"))
    refused = daemon.cli("provider", "add", "Other", "--type", "openai", "--key", SECRET)
    assert refused.returncode == 1 and "set-key" in refused.stderr
    refused = daemon.cli("provider", "set-key", "openai", SECRET)
    assert refused.returncode == 1
    assert SECRET not in refused.stdout + refused.stderr

    out = ok(daemon.cli("provider", "set-key", "OpenAI", input=SECRET + "\n"))
    assert SECRET not in out and "sk-…ET77" in out
    assert tomllib.loads(daemon.config.read_text())["providers"]["openai"]["api_key"] == SECRET
    out = ok(daemon.cli("provider", "set-key", "openai", "env:OPENAI_API_KEY"))
    assert "env:OPENAI_API_KEY" in out
    out = ok(daemon.cli("provider", "set-key", "openai", input=""))
    assert "Cleared" in out
    shown = ok(daemon.cli("provider", "show", "openai", "--json"))
    assert json.loads(shown)["apiKey"]["source"] == "none"
    assert SECRET not in daemon.log.read_text()


def test_update_enable_disable_remove(daemon: Daemon) -> None:
    ok(daemon.cli("provider", "add", "Gem", "--type", "gemini"))
    out = ok(daemon.cli("provider", "update", "gem", "--url", "http://127.0.0.1:9/", "--timeout", "12", "--header", "X-A=b"))
    assert "http://127.0.0.1:9/v1beta" in out
    assert "disabled" in ok(daemon.cli("provider", "disable", "Gem"))
    assert json.loads(ok(daemon.cli("provider", "show", "gem", "--json")))["enabled"] is False
    ok(daemon.cli("provider", "enable", "gem"))
    cfg = tomllib.loads(daemon.config.read_text())["providers"]["gem"]
    assert cfg["enabled"] is True and cfg["timeout"] == 12 and cfg["headers"] == {"X-A": "b"}
    ok(daemon.cli("provider", "update", "gem", "--url", ""))
    assert tomllib.loads(daemon.config.read_text())["providers"]["gem"].get("api_address") is None
    ok(daemon.cli("model", "add", "gem", "gemini-2.5-flash", "gemini-2.5-pro"))
    out = ok(daemon.cli("model", "remove", "gem", "gemini-2.5-pro", "nope"))
    assert "Not there: nope" in out
    ok(daemon.cli("provider", "remove", "gem"))
    assert "No providers yet" in ok(daemon.cli("provider", "list"))


def test_errors_say_what_to_do(daemon: Daemon) -> None:
    out = daemon.cli("provider", "show", "ghost")
    assert out.returncode == 1
    assert "ghost" in out.stderr and "orchard provider list" in out.stderr
    assert "Traceback" not in out.stderr


def test_commands_start_the_daemon_when_none_runs(daemon_process: Daemon) -> None:
    out = ok(daemon_process.cli("provider", "add", "Auto", "--type", "anthropic"))
    assert "Added provider Auto" in out
    status = json.loads(ok(daemon_process.cli("status", "--json")))
    assert status["running"]
    ok(daemon_process.cli("stop"))


def test_config_path_and_validate(daemon_process: Daemon) -> None:
    assert ok(daemon_process.cli("config", "path")).strip() == str(daemon_process.config)
    assert "valid" in ok(daemon_process.cli("config", "validate"))
    daemon_process.write_config('[providers.a]\nname = "A"\ntype = "openai"\nmodles = ["x"]\n')
    bad = daemon_process.cli("config", "validate")
    assert bad.returncode == 1
    assert f"{daemon_process.config}:4:1: unknown key `modles`" in bad.stderr
    assert "Fix line 4" in bad.stderr
    broken = daemon_process.config.with_name("broken.toml")
    broken.write_text("[providers.a\n")
    bad = daemon_process.cli("config", "validate", str(broken))
    assert bad.returncode == 1 and "broken.toml:1:" in bad.stderr and "Traceback" not in bad.stderr


def test_config_edit_runs_the_editor_then_validates(daemon_process: Daemon) -> None:
    editor = daemon_process.config.parent / "fake-editor.sh"
    daemon_process.config.parent.mkdir(parents=True, exist_ok=True)
    editor.write_text('#!/bin/sh\nprintf \'[providers.x]\\nname = "X"\\ntype = "openai"\\n\' >> "$1"\n')
    editor.chmod(0o755)
    env = dict(daemon_process.env, EDITOR=str(editor))
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "orchard", "config", "edit"], env=env, capture_output=True, text=True, input="")
    assert out.returncode == 0, out.stderr
    assert "valid, 1 provider" in out.stdout
    assert daemon_process.config.read_text().startswith("#:schema")
