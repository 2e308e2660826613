"""The checked-in JSON Schemas are exactly what the Structs generate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_checked_in_schemas_match_the_structs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-schema"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_protocol_schema_lists_every_method_and_notification() -> None:
    schema = json.loads((ROOT / "schema" / "protocol.schema.json").read_text())
    for method in ("daemon/status", "provider/list", "provider/get", "provider/add", "provider/update",
                   "provider/remove", "model/add", "model/update", "model/remove"):
        assert method in schema["methods"], method
        assert schema["methods"][method]["description"]
    assert {"config/didChange", "config/didFail"} <= set(schema["notifications"])
    # camelCase on the wire
    assert "apiAddress" in schema["$defs"]["ProviderAdd"]["properties"]


def test_config_schema_describes_every_key() -> None:
    schema = json.loads((ROOT / "schema" / "config.schema.json").read_text())
    provider = schema["$defs"]["ProviderConfig"]
    assert provider["additionalProperties"] is False
    for key, prop in provider["properties"].items():
        assert prop.get("description"), f"providers.*.{key} has no description"
    assert set(provider["properties"]["type"]["enum"]) == {"openai", "anthropic", "gemini", "azure-openai"}
