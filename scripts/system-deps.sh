#!/usr/bin/env bash
# Install the system packages the tests need when they are missing: Debian's chromium (driven by
# Playwright through /usr/bin/chromium) and a Java 17 runtime for Spark. Idempotent and quiet when
# everything is there; uses sudo when not root.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
