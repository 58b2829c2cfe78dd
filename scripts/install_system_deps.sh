#!/usr/bin/env bash
# Install the Debian packages the tests need, only where they are missing.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ldconfig -p | grep -q 'libGL\.so\.1' || need+=(libgl1)
ldconfig -p | grep -q 'libglib-2\.0\.so\.0' || need+=(libglib2.0-0)
# `ip netns` for tests/integration/test_remote_worker.py (it falls back to loopback without it).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
