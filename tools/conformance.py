"""The official MCP conformance suite against `warehouse-mcp --transport http`: `python tools/conformance.py`.

Installs the pinned suite and Node 22 (tools/install_node_tools.sh tools/conformance), checks that
tools/conformance/scenarios.txt decides every server scenario the suite has (`run`, or `skip` with a reason),
starts the installed server on a free loopback port (embedded backend, throwaway data dir), runs every `run`
scenario and exits non-zero when one fails. tests/mcp/test_conformance.py runs it, so tools/test.sh and .ci/run do.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE_DIR = ROOT / "tools" / "conformance"
SCENARIOS = SUITE_DIR / "scenarios.txt"
NODE = SUITE_DIR / "node_modules" / ".bin" / "node"
CLI = SUITE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SERVER = Path(sys.executable).with_name("warehouse-mcp")


def decided() -> tuple[list[str], dict[str, str]]:
    """(scenarios to run, scenarios skipped with their reason) from scenarios.txt."""
    run: list[str] = []
    skipped: dict[str, str] = {}
    for line in SCENARIOS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        verb, name, *reason = line.split(maxsplit=2)
        if verb == "run":
            run.append(name)
        elif verb == "skip" and reason:
            skipped[name] = reason[0]
        else:
            raise SystemExit(f"{SCENARIOS}: cannot read {line!r} (run <scenario> | skip <scenario> <reason>)")
    return run, skipped


def suite_scenarios() -> list[str]:
    listed = subprocess.run([NODE, CLI, "list"], capture_output=True, text=True, check=True).stdout
    server_part = listed.split("Client scenarios", 1)[0]
    return re.findall(r"^\s+- (\S+)", server_part, flags=re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("POSTHOG_", "WAREHOUSE_MCP_"))
    }
    env.update({"WAREHOUSE_MCP_EPHEMERAL": "1", "WAREHOUSE_MCP_BACKEND": "embedded"})
    process = subprocess.Popen(
        [SERVER, "--transport", "http", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    for _ in range(300):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            raise SystemExit(f"warehouse-mcp exited with {process.returncode} before listening")
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"warehouse-mcp did not listen on port {port}")


def run_scenario(url: str, scenario: str, out: Path) -> list[str]:
    """The failed checks of one scenario (empty when it passed)."""
    done = subprocess.run(
        [NODE, CLI, "server", "--url", url, "--scenario", scenario, "--output-dir", str(out / scenario)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    checks = [
        check for path in (out / scenario).glob("**/checks.json") for check in json.loads(path.read_text())
    ]
    failed = [
        f"{check.get('id')}: {check.get('errorMessage') or check.get('description')}"
        for check in checks
        if check.get("status") not in ("SUCCESS", "INFO")
    ]
    if done.returncode != 0 and not failed:
        failed.append(f"exit {done.returncode}: {(done.stderr or done.stdout)[-1500:]}")
    if not checks and not failed:
        failed.append("the suite recorded no checks")
    return failed


def main() -> int:
    subprocess.run(
        [ROOT / "tools" / "install_node_tools.sh", SUITE_DIR.relative_to(ROOT)], check=True, cwd=ROOT
    )
    run, skipped = decided()
    known = suite_scenarios()
    undecided = [name for name in known if name not in run and name not in skipped]
    gone = [name for name in [*run, *skipped] if name not in known]
    if undecided or gone:
        print(f"{SCENARIOS.relative_to(ROOT)} is out of date with the suite:", file=sys.stderr)
        for name in undecided:
            print(f"  new scenario {name}: add `run {name}` or `skip {name} <why>`", file=sys.stderr)
        for name in gone:
            print(f"  {name} is no longer in the suite: remove it", file=sys.stderr)
        return 1
    port = free_port()
    server = start_server(port)
    failures: dict[str, list[str]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="wmcp-conformance-") as out:
            for scenario in run:
                failed = run_scenario(f"http://127.0.0.1:{port}/mcp", scenario, Path(out))
                print(f"{'FAIL' if failed else 'ok  '} {scenario}")
                if failed:
                    failures[scenario] = failed
    finally:
        server.terminate()
        server.wait(30)
    print(
        f"{len(run) - len(failures)} of {len(run)} scenarios passed; {len(skipped)} do not apply (see {SCENARIOS.name})"
    )
    for scenario, failed in failures.items():
        for line in failed:
            print(f"  {scenario}: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
