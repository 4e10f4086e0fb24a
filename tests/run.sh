#!/usr/bin/env bash
# Runs hookline's whole test suite: formatting, lints, unit tests, the
# integration tests against real Redis servers (each test starts a private
# `redis-server` on a spare port, so the machine's own Redis is never
# touched), the services' suites once more on the embedded backend, and
# the customer portal in headless Chromium (tests/browser), and the Helm
# chart's offline validation (tests/helm.sh).
#
#   ./tests/run.sh
#
# Installs `redis-server` and `chromium` with apt and the Python package
# `standardwebhooks` with pip when they are missing (apt needs root or
# sudo), and the browser tests' npm packages from tests/browser's lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

need_redis_server() {
  # redis-cli (Debian's redis-tools, a dependency of redis-server) makes
  # the local Redis Clusters of the cluster tests and bench.
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
  echo "==> redis-server or redis-cli not found; installing them (Debian package redis-server)"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  # The package may start a system instance; the tests do not use it.
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null
}

need_python_tools() {
  # The delivery tests verify signatures with the reference Standard
  # Webhooks implementation (PyPI standardwebhooks).
  python3 -c "import standardwebhooks" 2>/dev/null && return 0
  echo "==> installing the Python package standardwebhooks"
  python3 -m pip install --quiet --disable-pip-version-check standardwebhooks
}

need_browser_tools() {
  # The portal's browser tests: Debian's chromium, driven by playwright-core
  # (tests/browser, installed from its lockfile; never `playwright install`).
  if ! command -v chromium >/dev/null 2>&1; then
    echo "==> chromium not found; installing it (Debian package chromium)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
  command -v node >/dev/null 2>&1 || { echo "node (20 or later) is needed for the browser tests" >&2; return 1; }
  echo "==> npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
}

need_redis_server
need_python_tools
need_browser_tools
echo "==> redis-server: $(redis-server --version | head -c 80)"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo build --bins (the e2e tests and the bench run the real binaries)"
cargo build --workspace --bins --locked

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
echo "==> the services' suites again, on the embedded backend (its behaviour-level conformance)"
embedded_suites=(-p hookline-subscriptions -p hookline-fanout -p hookline-delivery -p hookline-queue)
if cargo nextest --version >/dev/null 2>&1; then
  HOOKLINE_TEST_BACKEND=embedded cargo nextest run --locked --no-fail-fast "${embedded_suites[@]}"
else
  HOOKLINE_TEST_BACKEND=embedded cargo test --locked --no-fail-fast "${embedded_suites[@]}"
fi
echo "==> the customer portal in a real browser (chromium + playwright-core; screenshots in target/portal-browser)"
(cd tests/browser && CHROMIUM="$(command -v chromium)" npm test)
echo "==> hookline bench --smoke (every benchmark phase, small; figures come from a release run)"
cargo run --locked --quiet -p hookline -- bench --smoke
echo "==> hookline bench --smoke --cluster (the same on a private 3-master Redis Cluster)"
cargo run --locked --quiet -p hookline -- bench --smoke --cluster
echo "==> hookline bench --smoke --durable (one Redis and a replica, publishes acknowledged once it has them)"
cargo run --locked --quiet -p hookline -- bench --smoke --durable

echo "==> helm chart"
./tests/helm.sh

echo "==> all tests passed"
