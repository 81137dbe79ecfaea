#!/usr/bin/env bash
# Property-based conformance test of a running stroom API against its
# committed OpenAPI document, with schemathesis (pinned in
# tests/api/requirements.txt, installed into its own virtualenv).
#
# Usage: tests/api/schemathesis.sh BASE_URL TOKEN [SCHEMA_PATH]
#   BASE_URL     the server, e.g. http://127.0.0.1:8080 (loopback only)
#   TOKEN        a bearer token, sent as `Authorization: Bearer TOKEN` on every request
#   SCHEMA_PATH  the OpenAPI document; default api/openapi.json (from the repo root)
#
# Checks: no 5xx, documented status codes, documented content types, and
# response bodies valid against their schemas. Phases: examples, coverage
# and fuzzing (no stateful phase), at most MAX_EXAMPLES cases per
# operation. Operations that start long jobs (POST /v1/backtests,
# POST /v1/forecasts/refresh) are never called. Exits non-zero when
# schemathesis reports a failure or an error.
#
# Environment:
#   MAX_EXAMPLES       cases per operation (default 30)
#   SEED               hypothesis seed, to replay a run (default: random)
#   MODE               positive | negative | all (default all)
#   WORKERS            concurrent workers (default 1)
#   REQUEST_TIMEOUT    seconds per request before it counts as a failure (default 30)
#   ST_TIMEOUT         wall-clock bound of the whole run in seconds (default 900)
#   OUT                if set, a JUnit report is written to $OUT/schemathesis-junit.xml
#                      (and schemathesis' crash cache to $OUT/.schemathesis)
#   SCHEMATHESIS_VENV  the virtualenv (default $HOME/.cache/stroom/schemathesis-venv)
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 BASE_URL TOKEN [SCHEMA_PATH]" >&2
  exit 2
fi
BASE_URL=$1
TOKEN=$2
SCHEMA=${3:-}
# A schema given relative to the caller's folder stays valid after the cd.
if [ -n "$SCHEMA" ]; then
  SCHEMA=$(realpath -- "$SCHEMA")
fi
if [ -n "${OUT:-}" ]; then
  mkdir -p -- "$OUT"
  OUT=$(realpath -- "$OUT")
fi
cd "$(dirname "$0")/../.."
SCHEMA=${SCHEMA:-api/openapi.json}
if [ ! -f "$SCHEMA" ]; then
  echo "schema not found: $SCHEMA" >&2
  exit 2
fi
SCHEMA=$(realpath -- "$SCHEMA")

case "$BASE_URL" in
  http://127.*|http://localhost[:/]*|http://localhost|http://\[::1\]*) ;;
  *) echo "refusing a non-loopback BASE_URL: $BASE_URL" >&2; exit 2 ;;
esac

# schemathesis, at the pinned version, in its own virtualenv.
REQS=tests/api/requirements.txt
PINNED=$(sed -n 's/^schemathesis==\([^ ]*\).*/\1/p' "$REQS")
VENV=${SCHEMATHESIS_VENV:-$HOME/.cache/stroom/schemathesis-venv}
ST="$VENV/bin/schemathesis"
if ! { [ -x "$ST" ] && [ "$("$ST" --version 2>/dev/null)" = "schemathesis, version $PINNED" ]; }; then
  echo "installing schemathesis $PINNED into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
fi

args=(
  run "$SCHEMA"
  --url "$BASE_URL"
  --header "Authorization: Bearer $TOKEN"
  --checks "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
  --phases "examples,coverage,fuzzing"
  --mode "${MODE:-all}"
  --max-examples "${MAX_EXAMPLES:-30}"
  --workers "${WORKERS:-1}"
  --exclude-name "POST /v1/backtests"
  --exclude-name "POST /v1/forecasts/refresh"
  --request-timeout "${REQUEST_TIMEOUT:-30}"
  --max-redirects 0
  --generation-database none
  --no-color
)
if [ -n "${SEED:-}" ]; then
  args+=(--seed "$SEED")
fi
if [ -n "${OUT:-}" ]; then
  args+=(--report junit --report-junit-path "$OUT/schemathesis-junit.xml")
fi

# schemathesis and hypothesis keep caches (.schemathesis/, .hypothesis/) in
# the working folder: $OUT when set (kept, for `st replay`), else a
# temporary folder removed at exit, never the repo.
if [ -n "${OUT:-}" ]; then
  RUN_DIR=$OUT
else
  RUN_DIR=$(mktemp -d -t stroom-schemathesis.XXXXXX)
  trap 'rm -rf -- "$RUN_DIR"' EXIT
fi

echo "+ schemathesis ${args[*]//"Bearer $TOKEN"/Bearer ***}" >&2
status=0
(cd "$RUN_DIR" && timeout --kill-after=10 "${ST_TIMEOUT:-900}" "$ST" "${args[@]}") || status=$?
if [ "$status" -eq 124 ]; then
  echo "schemathesis: timed out after ${ST_TIMEOUT:-900} s" >&2
fi
exit "$status"
