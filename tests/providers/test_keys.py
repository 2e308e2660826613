"""Key references (env:, cmd:), previews, rotation: resolved lazily, cached, never shown."""

import shlex
import sys

import pytest

from orchard.errors import ProviderUnavailable
from orchard.providers import KeyCache, key_preview, key_source, split_keys
from orchard.providers.keys import KeyRing

SECRET = "sk-proj-Zq81b0tT3BlbkFJ9f2c"


def cmd(code: str) -> str:
    return "cmd:" + shlex.join([sys.executable, "-c", code])


def test_preview_never_shows_much():
    assert key_preview(SECRET) == "sk-…9f2c"
    assert key_preview("short-key-123") == "…"  # a few characters of a short key are too many
    assert key_preview("") == "(no key)"
    assert key_preview("env:OPENAI_API_KEY") == "env:OPENAI_API_KEY"
    assert key_preview("cmd:pass show openai") == "cmd:pass show openai"


def test_source():
    assert [key_source(v) for v in ("", "sk-x", "env:A", "cmd:x")] == ["none", "literal", "env", "cmd"]


def test_split_keys_like_cherry():
    assert split_keys("a, b,c") == ("a", "b", "c")
    assert split_keys(r"a\,b,c") == ("a,b", "c")
    assert split_keys("") == ("",)


async def test_literal_keys_come_back_unchanged():
    assert await KeyCache().resolve(SECRET, provider_id="p") == SECRET
    assert await KeyCache().resolve("", provider_id="p") == ""


async def test_env_key_is_read_when_needed(monkeypatch):
    monkeypatch.setenv("ORCHARD_TEST_KEY", f" {SECRET}\n")
    cache = KeyCache()
    assert await cache.resolve("env:ORCHARD_TEST_KEY", provider_id="p") == SECRET
    monkeypatch.setenv("ORCHARD_TEST_KEY", "rotated")
    assert await cache.resolve("env:ORCHARD_TEST_KEY", provider_id="p") == SECRET  # cached
    assert await cache.resolve("env:ORCHARD_TEST_KEY", provider_id="p", refresh=True) == "rotated"


async def test_missing_env_var_names_it(monkeypatch):
    monkeypatch.delenv("ORCHARD_NOT_SET", raising=False)
    with pytest.raises(ProviderUnavailable) as err:
        await KeyCache().resolve("env:ORCHARD_NOT_SET", provider_id="openai")
    assert "ORCHARD_NOT_SET" in err.value.message and "ORCHARD_NOT_SET" in err.value.hint
    assert "orchard provider set-key openai" in err.value.hint


async def test_command_key_runs_without_a_shell_once(tmp_path):
    counter = tmp_path / "runs"
    code = (f"import pathlib; p = pathlib.Path({str(counter)!r}); "
            f"p.write_text(p.read_text() + 'x' if p.exists() else 'x'); print('  {SECRET}  '); print('notes')")
    cache = KeyCache()
    assert await cache.resolve(cmd(code), provider_id="p") == SECRET
    assert await cache.resolve(cmd(code), provider_id="p") == SECRET
    assert counter.read_text() == "x"  # cached: the password manager is asked once
    await cache.resolve(cmd(code), provider_id="p", refresh=True)
    assert counter.read_text() == "xx"
    # No shell: `$HOME` and `;` reach the program as they are.
    assert await cache.resolve(cmd("import sys; print(sys.argv[1:])") + " '$HOME;x'",
                               provider_id="p") == "['$HOME;x']"


@pytest.mark.parametrize(("value", "words"), [
    (cmd("import sys; sys.stderr.write('vault locked\\n'); sys.exit(3)"), ["status 3", "vault locked"]),
    (cmd("pass"), ["printed nothing"]),
    ("cmd:/nonexistent/orchard-key-tool get", ["could not be started"]),
    ("cmd:", ["empty"]),
])
async def test_failing_command_names_it(value, words):
    with pytest.raises(ProviderUnavailable) as err:
        await KeyCache().resolve(value, provider_id="p")
    for word in words:
        assert word in err.value.message
    assert value[4:] in err.value.message and err.value.hint


async def test_command_timeout(monkeypatch):
    monkeypatch.setattr("orchard.providers.keys.COMMAND_TIMEOUT", 0.3)
    with pytest.raises(ProviderUnavailable) as err:
        await KeyCache().resolve(cmd("import time; time.sleep(5)"), provider_id="p")
    assert "did not finish" in err.value.message


def test_ring_rotates_round_robin_and_treats_no_key_as_one_empty_key():
    ring = KeyRing(("a", "b", "c"), KeyCache(), "p")
    assert [ring.order() for _ in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert KeyRing((), KeyCache(), "p").values == [""]
    assert KeyRing(("",), KeyCache(), "p").values == [""]
    assert KeyRing(("a", ""), KeyCache(), "p").values == ["a"]


def test_reprs_hide_keys():
    from orchard.providers import ProviderSettings

    ring = KeyRing((SECRET,), KeyCache(), "p")
    settings = ProviderSettings(id="p", type="openai", api_keys=(SECRET,),
                                headers={"Authorization": f"Bearer {SECRET}"})
    for thing in (ring, settings, KeyCache()):
        assert SECRET not in repr(thing) and SECRET not in str(thing)
