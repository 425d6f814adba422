#!/usr/bin/env bash
# Fuzzes the served OpenAPI document with Schemathesis (PyPI): every
# operation gets a bounded number of generated requests, every check runs
# (including positive data acceptance), then the stateful phase follows the
# document's links; every answer must be a non-5xx that matches the
# document. Private webhook targets are allowed, as that rule is a setting
# the document cannot know. Runs the gateway on its
# scripted engine and a throwaway SQLite database; prints how many requests
# were generated. Usage: .ci/schemathesis.sh PYTHON_VENV [MAX_EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="$1"
EXAMPLES="${2:-20}"
SEED="${SCHEMATHESIS_SEED:-3}"
"$VENV/bin/pip" install -q 'schemathesis>=4,<5'

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KEY="fuzz-$(date +%s%N)"
cargo build --locked --bin wagate-scripted -q
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
env -i PATH="$PATH" DATABASE_URL="sqlite://$WORK/fuzz.db" WAGATE_LISTEN="127.0.0.1:$PORT" \
  WAGATE_ADMIN_KEY="$KEY" WAGATE_LOG=warn WAGATE_API__RATE_LIMIT_PER_SEC=0 WAGATE_ALLOW_PRIVATE_TARGETS=true \
  WAGATE_MESSAGING__PACING__MIN_INTERVAL_MS=0 WAGATE_MESSAGING__PACING__JITTER_MS=0 \
  "$TARGET_DIR/debug/wagate-scripted" >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
ready=0
for _ in $(seq 1 150); do
  if curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "the gateway did not become ready for schemathesis; its log:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi

set +e
"$VENV/bin/schemathesis" --config-file .ci/schemathesis.toml run \
  "http://127.0.0.1:$PORT/openapi.json" \
  -H "Authorization: Bearer $KEY" \
  --checks all --max-examples "$EXAMPLES" --seed "$SEED" \
  --phases examples,coverage,fuzzing,stateful --no-color --output-truncate false \
  | tee "$WORK/report.txt"
status=${PIPESTATUS[0]}
set -e
generated=$(grep -Eo '[0-9]+ generated' "$WORK/report.txt" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
echo "schemathesis: $generated requests generated (seed $SEED, at most $EXAMPLES per operation)"
exit "$status"
