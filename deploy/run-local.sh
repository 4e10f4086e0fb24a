#!/usr/bin/env bash
# Runs hookline's services on this machine against a throwaway Redis (a
# private redis-server in a temp dir, or REDIS_URL if you give one), with
# development tokens:
#   tenant "acme":  dev-acme-token-000001
#   admin:          dev-admin-token-00001
#   service:        dev-service-token-001
# subscriptions on 127.0.0.1:50051, fanout on 127.0.0.1:50052, delivery on
# 127.0.0.1:50053; admin endpoints (/healthz, /readyz, /metrics) on
# 127.0.0.1:9091, 9092, 9093. Delivery may POST to 127.0.0.0/8 here (for
# deploy/receiver.py); in production only public addresses are allowed.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -z "${REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null; then
    echo "redis-server not found; installing it (Debian package redis-server), or set REDIS_URL"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  fi
  PORT="${REDIS_PORT:-6390}"
  DIR="$(mktemp -d)"
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" --save "" --appendonly no >/dev/null &
  PIDS+=($!)
  REDIS_URL="redis://127.0.0.1:$PORT"
  for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "throwaway redis on $REDIS_URL"
fi

cargo build -p hookline-subscriptions -p hookline-fanout -p hookline-delivery

export HOOKLINE_REDIS_URL="$REDIS_URL"
export HOOKLINE_AUTH__TOKENS='[{token="dev-acme-token-000001",tenant="acme"},{token="dev-admin-token-00001",admin=true}]'
export HOOKLINE_AUTH__SERVICE_TOKEN="dev-service-token-001"
export HOOKLINE_SUBSCRIPTIONS_URL="http://127.0.0.1:50051"
export HOOKLINE_FANOUT_URL="http://127.0.0.1:50052"
export HOOKLINE_ALLOW_CIDRS='["127.0.0.0/8"]'

HOOKLINE_LISTEN_ADDR=127.0.0.1:50051 HOOKLINE_ADMIN_ADDR=127.0.0.1:9091 ./target/debug/hookline-subscriptions &
PIDS+=($!)
HOOKLINE_LISTEN_ADDR=127.0.0.1:50052 HOOKLINE_ADMIN_ADDR=127.0.0.1:9092 ./target/debug/hookline-fanout &
PIDS+=($!)
HOOKLINE_LISTEN_ADDR=127.0.0.1:50053 HOOKLINE_ADMIN_ADDR=127.0.0.1:9093 ./target/debug/hookline-delivery &
PIDS+=($!)
wait -n "${PIDS[@]}"
