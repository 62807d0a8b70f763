"""MCP Registry metadata: server.json follows the registry's schema (vendored: tools/registry/server.schema.json,
the 2025-12-11 version) and agrees with the package, the CLI and the README."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from warehouse_mcp import __version__
from warehouse_mcp.settings import TOOLSETS

ROOT = Path(__file__).resolve().parents[2]
SERVER_JSON = json.loads((ROOT / "server.json").read_text())
SCHEMA = json.loads((ROOT / "tools" / "registry" / "server.schema.json").read_text())
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
README = (ROOT / "README.md").read_text()
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD")


def problems(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_server_json_follows_the_registry_schema_it_names() -> None:
    assert SERVER_JSON["$schema"] == SCHEMA["$id"]
    assert problems(SERVER_JSON) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda doc: doc.update(description="x" * 101),
        lambda doc: doc.update(name="no-namespace"),
        lambda doc: doc["packages"][0].pop("transport"),
        lambda doc: doc["packages"][1]["transport"].update(url="not a url"),
    ],
)
def test_the_vendored_schema_really_checks(breakage: Any) -> None:
    broken = copy.deepcopy(SERVER_JSON)
    breakage(broken)
    assert problems(broken) != []


def test_server_json_describes_this_package() -> None:
    assert SERVER_JSON["version"] == PROJECT["version"] == __version__
    for package in SERVER_JSON["packages"]:
        assert package["registryType"] == "pypi"
        assert package["identifier"] == PROJECT["name"]
        assert package["version"] == PROJECT["version"]
    transports = {package["transport"]["type"] for package in SERVER_JSON["packages"]}
    assert transports == {"stdio", "streamable-http"}


def test_readme_names_the_server_for_pypi_ownership() -> None:
    # The registry checks a PyPI package's README for this line before it accepts the package as the server's.
    assert f"<!-- mcp-name: {SERVER_JSON['name']} -->" in README


def test_environment_variables_are_documented_and_secrets_marked() -> None:
    variables = [
        variable for package in SERVER_JSON["packages"] for variable in package["environmentVariables"]
    ]
    for variable in variables:
        name = variable["name"]
        assert f"`{name}`" in README, f"{name} is not in the README's settings table"
        assert variable.get("isSecret", False) == bool(SECRET_NAME.search(name)), name
    toolsets = next(v for v in variables if v["name"] == "WAREHOUSE_MCP_TOOLSETS")
    assert ",".join(TOOLSETS) in toolsets["description"]


def test_package_arguments_are_flags_the_command_takes() -> None:
    usage = subprocess.run(
        [str(Path(sys.executable).with_name("warehouse-mcp")), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for package in SERVER_JSON["packages"]:
        for argument in package.get("packageArguments", []):
            assert argument["name"] in usage, argument
