#!/usr/bin/env bash
# make demo: build Herald, migrate DATABASE_URL, start the sample receiver and
# `herald run`, insert sample messages with plain SQL, show them arrive, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/herald_demo?sslmode=disable}
RECEIVER_ADDR=${RECEIVER_ADDR:-127.0.0.1:8090}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "building bin/herald and bin/herald-receiver"
go build -o bin/ ./cmd/herald ./cmd/herald-receiver

# Create the database if it does not exist yet (connecting to the server's
# "postgres" database next to it).
base=${DATABASE_URL%%\?*}
db=${base##*/}
admin="${base%/*}/postgres"
if ! psql "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  say "creating database $db"
  psql "$admin" -qc "CREATE DATABASE \"$db\""
fi

say "herald migrate"
DATABASE_URL=$DATABASE_URL bin/herald --log-format console migrate

secret="whsec_$(head -c 32 /dev/urandom | base64)"
cat > "$work/herald.yaml" <<YAML
database:
  url: \${DATABASE_URL}
delivery:
  allow_private_networks: true   # the demo receiver listens on loopback
relay:
  poll_interval: 250ms
endpoints:
  - name: demo-receiver
    url: http://$RECEIVER_ADDR/webhooks
    secret: \${DEMO_WEBHOOK_SECRET}
    topics: ["orders.*"]
    ordered: true   # each order's messages arrive in commit order
YAML

say "starting the sample receiver on $RECEIVER_ADDR"
HERALD_RECEIVER_SECRET=$secret bin/herald-receiver -addr "$RECEIVER_ADDR" -print-body > "$work/receiver.log" 2>&1 &
pids+=($!)
say "starting herald run"
DATABASE_URL=$DATABASE_URL DEMO_WEBHOOK_SECRET=$secret bin/herald --config "$work/herald.yaml" --log-format console run > "$work/herald.log" 2>&1 &
herald_pid=$!
pids+=($herald_pid)
for _ in $(seq 1 50); do curl -sf "http://$RECEIVER_ADDR/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

say "inserting 5 messages with plain SQL, in one transaction"
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q <<'SQL'
BEGIN;
INSERT INTO outbox.messages (topic, payload, key) VALUES
  ('orders.created',   '{"order_id": 1, "total_cents": 1999}', 'order-1'),
  ('orders.created',   '{"order_id": 2, "total_cents": 4500}', 'order-2'),
  ('orders.paid',      '{"order_id": 1}',                      'order-1'),
  ('orders.shipped',   '{"order_id": 1, "carrier": "DHL"}',    'order-1'),
  ('orders.cancelled', '{"order_id": 2, "reason": "customer"}', 'order-2');
NOTIFY herald_outbox;
COMMIT;
SQL

for _ in $(seq 1 100); do
  n=$(curl -sf "http://$RECEIVER_ADDR/stats" | sed -n 's/.*"processed":\([0-9]*\).*/\1/p')
  [[ "${n:-0}" -ge 5 ]] && break
  sleep 0.1
done
say "the receiver got (verified signature, deduplicated by webhook-id; each order's messages in order):"
grep '"received"\|received' "$work/receiver.log" || cat "$work/receiver.log"
say "receiver stats: $(curl -sf "http://$RECEIVER_ADDR/stats")"
say "left in the outbox: $(psql "$DATABASE_URL" -Atc 'SELECT count(*) FROM outbox.messages') pending, $(psql "$DATABASE_URL" -Atc 'SELECT count(*) FROM outbox.dead') dead"

say "stopping herald (SIGTERM)"
kill -TERM "$herald_pid"
wait "$herald_pid" && echo "herald exited 0"
cat "$work/herald.log"
[[ "${n:-0}" -ge 5 ]] || { echo "demo: only ${n:-0} of 5 messages arrived" >&2; exit 1; }
