"""The official MCP conformance suite (@modelcontextprotocol/conformance, on Node 22) against the HTTP server.

tools/conformance.py does the work: it installs the pinned suite with npm, checks that
tools/conformance/scenarios.txt decides every scenario the suite has for both protocol generations the server
speaks (2025-11-25 and the stateless 2026-07-28), and runs the applicable ones at each. Without npm the test
skips locally and fails under CI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.browser.browser_support import unavailable

ROOT = Path(__file__).resolve().parents[2]


def test_the_conformance_suite_passes_every_applicable_scenario() -> None:
    if shutil.which("npm") is None:
        unavailable("npm not found: install Node.js with npm to run the MCP conformance suite")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "conformance.py")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "FAIL" not in done.stdout
    for generation in ("2025-11-25", "2026-07-28"):
        summary = re.search(rf"^{generation}: (\d+) of (\d+) scenarios passed$", done.stdout, re.MULTILINE)
        assert summary and summary[1] == summary[2] != "0", (
            f"{generation} ran nothing or failed:\n{done.stdout}"
        )
