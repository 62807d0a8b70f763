"""The built wheel works on its own: installed into a fresh venv, its `warehouse-mcp` prints the version and
answers tools/list over stdio (so the wheel carries every module and data file the server needs)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from warehouse_mcp import __version__
from warehouse_mcp.server import selected_operations
from warehouse_mcp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the built wheel; the dependencies come from this venv's site-packages
    (a path entry, after the venv's own), so that the test needs no download of them."""
    work = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (work / "dist").glob("warehouse_mcp-*.whl")
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [str(python), "-c", "import warehouse_mcp; print(warehouse_mcp.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(env_dir)), f"the venv imports warehouse_mcp from {where}, not from the wheel"
    return env_dir / "bin" / "warehouse-mcp"


def test_the_installed_command_prints_its_version(fresh_install: Path) -> None:
    done = subprocess.run([str(fresh_install), "version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == __version__


@pytest.mark.anyio
async def test_the_installed_server_lists_its_tools(fresh_install: Path) -> None:
    env = {"PATH": os.environ["PATH"], "WAREHOUSE_MCP_EPHEMERAL": "1", "WAREHOUSE_MCP_BACKEND": "embedded"}
    async with Client(StdioServerParameters(command=str(fresh_install), args=[], env=env)) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == {op.tool for op in selected_operations(Settings())}
