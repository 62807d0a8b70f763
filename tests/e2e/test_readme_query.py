"""README "Query your data": its command, run verbatim, answers while a server runs and syncs."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import Database, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = str(ROOT / ".venv" / "bin" / "warehouse-mcp")


def readme_command() -> str:
    section = (ROOT / "README.md").read_text().split("## Query your data", 1)[1]
    match = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert match, "the README's Query your data section has no sh block"
    return match.group(1)


def test_the_readme_query_command_works_while_the_server_syncs(postgres_db: Database, tmp_path: Path) -> None:
    assert Path(BIN).exists(), "the README's set-up (.venv at the repository root) is what this test runs"
    postgres_db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text)",
        "INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 3000) g",
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # the default data directory, as in the README
    port = free_port()
    daemon = subprocess.Popen([BIN, "serve-api", "--port", str(port)], env=env, stderr=subprocess.PIPE)
    try:
        home = tmp_path / ".local" / "share" / "warehouse-mcp"
        api = f"http://127.0.0.1:{port}/api/projects/1/external_data_sources/"
        for _ in range(200):
            if (home / "api_token").exists():
                try:
                    httpx.get(api, timeout=0.5)
                    break
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {(home / 'api_token').read_text().strip()}"}
        stored = httpx.post(
            f"{api}store_credentials/",
            json={"source_type": "Postgres", "payload": postgres_db.config},
            headers=headers,
            timeout=30,
        ).json()
        made = httpx.post(
            f"{api}setup/",
            json={"source_type": "Postgres", "payload": {"credential_id": stored["credential_id"]}},
            headers=headers,
            timeout=30,
        ).json()
        for _ in range(600):
            if httpx.get(f"{api}{made['id']}/", headers=headers, timeout=10).json()["status"] == "Completed":
                break
            time.sleep(0.1)
        httpx.post(f"{api}{made['id']}/reload/", headers=headers, timeout=10)  # and query during that sync
        done = subprocess.run(
            ["bash", "-c", readme_command()], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "postgres_items" in done.stdout
        assert daemon.poll() is None  # the server ran the whole time
    finally:
        daemon.terminate()
        daemon.wait(15)
