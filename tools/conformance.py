"""The official MCP conformance suite against `warehouse-mcp --transport http`: `python tools/conformance.py`.

Installs the pinned suite and Node 22 (tools/install_node_tools.sh tools/conformance), checks that
tools/conformance/scenarios.txt decides every server scenario the suite has for each protocol generation the
server speaks (`run`, or `skip` with a reason), starts the installed server on a free loopback port (embedded
backend, throwaway data dir), runs every `run` scenario at each of its generations and exits non-zero when one
fails. tests/browser/test_conformance.py runs it, so tools/test.sh and .ci/run do.
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE_DIR = ROOT / "tools" / "conformance"
SCENARIOS = SUITE_DIR / "scenarios.txt"
NODE = SUITE_DIR / "node_modules" / ".bin" / "node"
CLI = SUITE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SERVER = Path(sys.executable).with_name("warehouse-mcp")

# The protocol generations the server speaks, each run with the suite's --spec-version of that name. Extension
# scenarios are tagged `extension` instead of a version; the suite runs them at no dated version.
GENERATIONS = ("2025-11-25", "2026-07-28")
EXTENSION = "extension"

Key = tuple[str, str]  # (generation, scenario)


@dataclass
class Decisions:
    run: list[Key] = field(default_factory=list)
    skipped: dict[Key, str] = field(default_factory=dict)
    skipped_checks: dict[Key, dict[str, str]] = field(default_factory=dict)


def decided() -> Decisions:
    """The run and skip lines of scenarios.txt, one entry per generation they name."""
    decisions = Decisions()
    for line in SCENARIOS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        verb, generations, name, reason = [*line.split(maxsplit=3), "", ""][:4]
        for generation in generations.split(","):
            if generation not in (*GENERATIONS, EXTENSION) or not name or (verb == "run") == bool(reason):
                raise SystemExit(
                    f"{SCENARIOS}: cannot read {line!r} "
                    f"(run <generations> <scenario> | skip <generations> <scenario>[:<check>] <reason>)"
                )
            scenario, _, check = name.partition(":")
            key = (generation, scenario)
            if not check and (key in decisions.run or key in decisions.skipped):
                raise SystemExit(f"{SCENARIOS}: {scenario} at {generation} is decided twice")
            if verb == "run" and generation != EXTENSION and not check:
                decisions.run.append(key)
            elif verb == "skip" and check:
                decisions.skipped_checks.setdefault(key, {})[check] = reason
            elif verb == "skip":
                decisions.skipped[key] = reason
            else:
                raise SystemExit(f"{SCENARIOS}: cannot {verb} {generation} {name} ({line!r})")
    return decisions


def suite_scenarios() -> set[Key]:
    """Every (generation, scenario) of the suite's server scenarios, for the generations the server speaks."""
    listed = subprocess.run([NODE, CLI, "list"], capture_output=True, text=True, check=True).stdout
    server_part = listed.split("Client scenarios", 1)[0]
    return {
        (tag, name)
        for name, tags in re.findall(r"^\s+- (\S+) \[([^\]]*)\]", server_part, flags=re.MULTILINE)
        for tag in tags.split(",")
        if tag in (*GENERATIONS, EXTENSION)
    }


def out_of_date(decisions: Decisions, known: set[Key]) -> list[str]:
    """What scenarios.txt must change to match the suite (empty when it decides exactly what the suite has)."""
    named = {*decisions.run, *decisions.skipped}
    problems = [
        f"new scenario {s} at {g}: add `run {g} {s}` or `skip {g} {s} <why>`"
        for g, s in sorted(known - named)
    ]
    problems += [f"{s} at {g} is not in the suite: remove it" for g, s in sorted(named - known)]
    problems += [
        f"{s} at {g}: check skips need a `run` line"
        for g, s in decisions.skipped_checks
        if (g, s) not in decisions.run
    ]
    problems += [
        f"{g} runs no scenario" for g in GENERATIONS if not any(g == run[0] for run in decisions.run)
    ]
    return problems


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


def run_scenario(
    url: str, generation: str, scenario: str, skipped_checks: dict[str, str], out: Path
) -> list[str]:
    """The failed checks of one scenario at one generation (empty when it passed)."""
    out = out / generation / scenario
    args = ["--url", url, "--scenario", scenario, "--spec-version", generation, "--output-dir", str(out)]
    done = subprocess.run(
        [NODE, CLI, "server", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    checks = [check for path in out.glob("**/checks.json") for check in json.loads(path.read_text())]
    failed = [
        f"{check.get('id')}: {check.get('errorMessage') or check.get('description')}"
        for check in checks
        if check.get("status") not in ("SUCCESS", "INFO") and check.get("id") not in skipped_checks
    ]
    recorded = {check.get("id") for check in checks}
    failed += [
        f"{check}: skipped in {SCENARIOS.name} but no longer reported"
        for check in skipped_checks
        if check not in recorded
    ]
    if done.returncode != 0 and not failed and not skipped_checks:
        failed.append(f"exit {done.returncode}: {(done.stderr or done.stdout)[-1500:]}")
    if not checks:
        failed.append(f"the suite recorded no checks: {(done.stderr or done.stdout)[-500:]}")
    return failed


def main() -> int:
    subprocess.run(
        [ROOT / "tools" / "install_node_tools.sh", SUITE_DIR.relative_to(ROOT)], check=True, cwd=ROOT
    )
    decisions = decided()
    problems = out_of_date(decisions, suite_scenarios())
    if problems:
        print(f"{SCENARIOS.relative_to(ROOT)} is out of date with the suite:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    port = free_port()
    server = start_server(port)
    failures: dict[Key, list[str]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="wmcp-conformance-") as out:
            for generation, scenario in decisions.run:
                skipped_checks = decisions.skipped_checks.get((generation, scenario), {})
                failed = run_scenario(
                    f"http://127.0.0.1:{port}/mcp", generation, scenario, skipped_checks, Path(out)
                )
                print(f"{'FAIL' if failed else 'ok  '} {generation} {scenario}")
                if failed:
                    failures[(generation, scenario)] = failed
    finally:
        server.terminate()
        server.wait(30)
    for generation in GENERATIONS:
        ran = [key for key in decisions.run if key[0] == generation]
        passed = [key for key in ran if key not in failures]
        print(f"{generation}: {len(passed)} of {len(ran)} scenarios passed")
    print(
        f"{len(decisions.skipped)} scenario/generation pairs and {sum(map(len, decisions.skipped_checks.values()))} checks"
        f" do not apply (see {SCENARIOS.name})"
    )
    for (generation, scenario), failed in failures.items():
        for line in failed:
            print(f"  {generation} {scenario}: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
