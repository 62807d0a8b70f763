#!/usr/bin/env bash
# The test command (README "Set-up", and what .ci/run runs): prepares this machine, then runs pytest.
#   - the local PostgreSQL and MariaDB, configured as the tests need (tools/prepare_services.sh);
#   - Debian's Chromium for the browser tests (playwright drives /usr/bin/chromium; it cannot download one);
#   - the package with its test extras in .venv.
# Extra arguments go to pytest (e.g. tools/test.sh -k connect -x).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  tools/prepare_services.sh
  if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
else
  echo "not root: assuming PostgreSQL, MariaDB and /usr/bin/chromium are ready (see tools/prepare_services.sh)" >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
