#!/usr/bin/env bash
# make bench/sources: one `herald run` relaying from two databases against two
# `herald run` processes with one database each, N messages per database,
# alternating rounds, same receiver. Loopback only; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50000}
ROUNDS=${ROUNDS:-2}
ADMIN=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
PORT=${RECEIVER_PORT:-18181}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/" ./cmd/herald ./cmd/herald-bench
H=$work/herald
HERALD_BENCH_CHILD=receiver "$work/herald-bench" -addr "127.0.0.1:$PORT" -ttl 30m > "$work/receiver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -sf "127.0.0.1:$PORT/stats" >/dev/null && break; sleep 0.1; done
psqlq() { PGOPTIONS="-c client_min_messages=warning" psql -Atq "$@"; }

prepare() {
  for db in herald_src_a herald_src_b; do
    psqlq "$ADMIN/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    DATABASE_URL="$ADMIN/$db" "$H" migrate >/dev/null 2>&1
    psqlq "$ADMIN/$db" -c "INSERT INTO outbox.messages (topic, payload)
      SELECT 'orders.created', json_build_object('order_id', 'ord-' || g, 'amount_cents', g, 'currency', 'EUR')::text::json
      FROM generate_series(1, $N) g" -c "ANALYZE outbox.messages" -c "CHECKPOINT"
  done
}
endpoints="delivery:
  allow_private_networks: true
endpoints:
  - name: receiver
    url: http://127.0.0.1:$PORT/hook
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    topics: [\"*\"]
    max_in_flight: 256"
# drain starts the given configs, waits until both outboxes are empty and
# prints deliveries/s.
drain() {
  local start end p; local started=()
  start=$(date +%s.%N)
  for cfg in "$@"; do "$H" --config "$cfg" run > "$cfg.log" 2>&1 & started+=($!); done
  for _ in $(seq 1 2400); do
    [[ "$(psqlq "$ADMIN/herald_src_a" -c 'SELECT count(*) FROM outbox.messages')" == 0 &&
       "$(psqlq "$ADMIN/herald_src_b" -c 'SELECT count(*) FROM outbox.messages')" == 0 ]] && break
    sleep 0.05
  done
  end=$(date +%s.%N)
  for p in "${started[@]}"; do kill -TERM "$p"; done
  for p in "${started[@]}"; do wait "$p"; done
  echo "scale=0; 2*$N/($end-$start)" | bc -l
}
printf 'sources:\n  - name: a\n    url: %s/herald_src_a\n  - name: b\n    url: %s/herald_src_b\n%s\n' "$ADMIN" "$ADMIN" "$endpoints" > "$work/two.yaml"
for db in a b; do printf 'database:\n  url: %s/herald_src_%s\n%s\n' "$ADMIN" "$db" "$endpoints" > "$work/one_$db.yaml"; done
echo "| round | one herald, two sources (deliveries/s) | two heralds, one source each (deliveries/s) |"
echo "|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  prepare; one=$(drain "$work/two.yaml")
  prepare; two=$(drain "$work/one_a.yaml" "$work/one_b.yaml")
  echo "| $round | $one | $two |"
done
for db in herald_src_a herald_src_b; do psqlq "$ADMIN/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
