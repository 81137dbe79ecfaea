#!/usr/bin/env bash
# Side by side: stroom's route-forecast endpoint and nginx serving the same
# JSON as a static file, under the same wrk load, on loopback only.
#
# It creates (or reuses) a demo store, a viewer key, starts `stroom serve`
# on a free loopback port, saves one response of
# GET /v1/routes/ROUTE/forecast, serves that file with nginx (a private
# config, as many workers as the server has cores, no access log) on another
# loopback port at the same path, then runs wrk against both with the same
# settings (a warm-up run first) and prints requests/s and p50/p99 latency,
# the stroom/nginx ratio of requests/s and whether the targets are met
# (>= 0.5x nginx's requests/s, p99 < 5 ms). It reports and exits 0 whether
# the targets are met or not; it exits non-zero only when it cannot run.
#
# Usage: benches/api_vs_nginx.sh [DEMO_DIR]
#   DEMO_DIR  a folder made by `stroom demo --dir DEMO_DIR --no-serve` (its
#             store is DEMO_DIR/store), or a store folder itself. When it
#             does not exist the demo is made there (and kept); without it
#             the demo is made in a temporary folder and removed at exit
#             (about 2 minutes).
#
# Environment:
#   STROOM_BIN      default $CARGO_TARGET_DIR/release/stroom
#                   (CARGO_TARGET_DIR defaults to $HOME/.cache/stroom/target)
#   ROUTE           default western-balkans
#   THREADS, CONNS  wrk threads and connections (default 2 and 32)
#   DURATION        measured run per server (default 10s); WARMUP (default 2s)
#   WORKERS         nginx worker processes (default: nproc, like the server)
#   OUT             if set, results are written to $OUT/api_vs_nginx.json
set -euo pipefail

# Paths given by the caller, resolved before leaving their folder.
DEMO_ARG=${1:-}
if [ -n "$DEMO_ARG" ]; then
  DEMO_ARG=$(realpath -m -- "$DEMO_ARG")
fi
if [ -n "${OUT:-}" ]; then
  mkdir -p -- "$OUT"
  OUT=$(realpath -- "$OUT")
fi
cd "$(dirname "$0")/.."

STROOM_BIN=${STROOM_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/stroom/target}/release/stroom}
ROUTE=${ROUTE:-western-balkans}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WORKERS=${WORKERS:-$(nproc)}
READY_TIMEOUT=${READY_TIMEOUT:-120}
TARGET_RATIO=0.5
TARGET_P99_MS=5

log() { echo "[api_vs_nginx] $*" >&2; }
die() { log "error: $*"; exit 1; }

[ -x "$STROOM_BIN" ] || die "no stroom binary at $STROOM_BIN (cargo build --release, or set STROOM_BIN)"

# --- tools --------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1; then
  log "installing wrk and nginx (apt)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq wrk nginx >/dev/null; } \
    || die "could not install wrk and nginx with apt-get"
fi
# Debian keeps nginx in /usr/sbin, which a non-login PATH may lack.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx not found after install"
command -v wrk >/dev/null 2>&1 || die "wrk not found after install"
command -v curl >/dev/null 2>&1 || die "curl not found"

# --- clean-up of everything this script starts --------------------------
WORK=$(mktemp -d -t stroom-api-bench.XXXXXX)
SERVE_PID=""
NGINX_PID=""
WRK_PID=""
cleanup() {
  local pid
  for pid in "$WRK_PID" "$SERVE_PID" "$NGINX_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for pid in "$WRK_PID" "$SERVE_PID" "$NGINX_PID"; do
    if [ -n "$pid" ]; then
      # Bounded wait, then force.
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until URL answers 200, while the process PID lives, for at most SECS.
wait_ready() {
  local url=$1 pid=$2 secs=$3 name=$4 logfile=$5
  local deadline=$((SECONDS + secs))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before it was ready; its log:"
      tail -n 30 "$logfile" >&2 || true
      exit 1
    fi
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  log "$name not ready after ${secs} s; its log:"
  tail -n 30 "$logfile" >&2 || true
  exit 1
}

# --- demo store ---------------------------------------------------------
if [ -n "$DEMO_ARG" ]; then
  DEMO=$DEMO_ARG
else
  DEMO=$WORK/demo
fi
if [ -d "$DEMO/store" ]; then
  STORE=$DEMO/store
elif [ -d "$DEMO" ] && [ ! -d "$DEMO/sim" ] && [ -n "$(ls -A "$DEMO" 2>/dev/null)" ]; then
  # A store folder given directly.
  STORE=$DEMO
else
  log "making the demo store in $DEMO (about 2 minutes)"
  # The demo's folder option is --out (older builds: --dir).
  DEMO_FLAG=--out
  if ! "$STROOM_BIN" demo --help 2>/dev/null | grep -q -- '--out'; then DEMO_FLAG=--dir; fi
  "$STROOM_BIN" demo "$DEMO_FLAG" "$DEMO" --no-serve >"$WORK/demo.log" 2>&1 \
    || { tail -n 30 "$WORK/demo.log" >&2; die "stroom demo failed"; }
  STORE=$DEMO/store
  [ -d "$STORE" ] || STORE=$DEMO
fi
log "store: $STORE"

# --- stroom serve -------------------------------------------------------
KEYS=$WORK/keys.toml
TOKEN=$("$STROOM_BIN" keys create --role viewer --keys "$KEYS" | tail -n 1 | tr -d '[:space:]')
[ -n "$TOKEN" ] || die "stroom keys create printed no token"

SPORT=$(free_port)
"$STROOM_BIN" serve --store "$STORE" --addr "127.0.0.1:$SPORT" --keys "$KEYS" \
  --audit "$WORK/audit.jsonl" --jobs "$WORK/jobs.jsonl" >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
wait_ready "http://127.0.0.1:$SPORT/readyz" "$SERVE_PID" "$READY_TIMEOUT" "stroom serve" "$WORK/serve.log"
log "stroom serve ready on 127.0.0.1:$SPORT (pid $SERVE_PID)"

PATH_UNDER_TEST="/v1/routes/$ROUTE/forecast"
STROOM_URL="http://127.0.0.1:$SPORT$PATH_UNDER_TEST"

# --- the static copy, served by nginx -----------------------------------
NGX=$WORK/nginx
mkdir -p "$NGX/www/v1/routes/$ROUTE" "$NGX/tmp" "$NGX/logs"
BODY=$NGX/www$PATH_UNDER_TEST
code=$(curl -sS --max-time 30 -H "Authorization: Bearer $TOKEN" -H "Accept: application/json" \
  -o "$BODY" -w '%{http_code}' "$STROOM_URL") || die "fetching $STROOM_URL failed"
if [ "$code" != 200 ]; then
  log "GET $PATH_UNDER_TEST answered $code:"; head -c 2000 "$BODY" >&2; echo >&2
  die "the forecast endpoint did not answer 200"
fi
python3 -m json.tool "$BODY" >/dev/null || die "the forecast response is not JSON"
BODY_BYTES=$(wc -c <"$BODY")
log "forecast JSON: $BODY_BYTES bytes"
# nginx workers drop root privileges: they must be able to read the file.
chmod 755 "$WORK"
chmod -R a+rX "$NGX"

NPORT=$(free_port)
cat >"$NGX/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path $NGX/tmp/body;
  proxy_temp_path $NGX/tmp/proxy;
  fastcgi_temp_path $NGX/tmp/fastcgi;
  uwsgi_temp_path $NGX/tmp/uwsgi;
  scgi_temp_path $NGX/tmp/scgi;
  default_type application/json;
  server {
    listen 127.0.0.1:$NPORT;
    root $NGX/www;
    location / { try_files \$uri =404; }
  }
}
EOF
"$NGINX" -t -q -c "$NGX/nginx.conf" -p "$NGX" -e "$NGX/logs/error.log" \
  || die "nginx rejected its config"
"$NGINX" -c "$NGX/nginx.conf" -p "$NGX" -e "$NGX/logs/error.log" >"$NGX/logs/stdout.log" 2>&1 &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NPORT$PATH_UNDER_TEST"
wait_ready "$NGINX_URL" "$NGINX_PID" 20 nginx "$NGX/logs/error.log"
curl -fsS --max-time 5 "$NGINX_URL" | cmp -s - "$BODY" || die "nginx does not serve the saved body"
log "nginx ready on 127.0.0.1:$NPORT (pid $NGINX_PID, $WORKERS workers)"

# --- load -----------------------------------------------------------------
# Seconds in a wrk duration such as 10s, 1m, 500ms (for a bound on wrk itself).
duration_secs() {
  case "$1" in
    *ms) echo 1 ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *h) echo $(( ${1%h} * 3600 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}

# In the background, so that a signal reaches the traps at once.
run_wrk() {  # DURATION URL OUTFILE [--latency]
  local d=$1 url=$2 out=$3 status=0; shift 3
  timeout --kill-after=5 $(( $(duration_secs "$d") + 30 )) \
    wrk -t"$THREADS" -c"$CONNS" -d"$d" --timeout 5s "$@" \
      -H "Authorization: Bearer $TOKEN" -H "Accept: application/json" "$url" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || status=$?
  WRK_PID=""
  if [ "$status" -ne 0 ]; then
    cat "$out" >&2
    die "wrk failed (exit $status) against $url"
  fi
}

# Parses wrk --latency output: requests/s, p50 ms, p99 ms, non-2xx/3xx, socket errors.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
    END {
      if (rps == "" || p50 == "" || p99 == "") exit 1
      printf "%.1f %.3f %.3f %d %d\n", rps, p50, p99, bad + 0, errs + 0
    }'
}

declare -A RES
for side in stroom nginx; do
  if [ "$side" = stroom ]; then url=$STROOM_URL; else url=$NGINX_URL; fi
  log "$side: warm-up $WARMUP"
  run_wrk "$WARMUP" "$url" "$WORK/warmup-$side.txt"
  log "$side: wrk -t$THREADS -c$CONNS -d$DURATION --latency"
  run_wrk "$DURATION" "$url" "$WORK/wrk-$side.txt" --latency
  cat "$WORK/wrk-$side.txt" >&2
  RES[$side]=$(parse_wrk <"$WORK/wrk-$side.txt") || die "could not parse wrk output for $side"
done

read -r S_RPS S_P50 S_P99 S_BAD S_ERR <<<"${RES[stroom]}"
read -r N_RPS N_P50 N_P99 N_BAD N_ERR <<<"${RES[nginx]}"
RATIO=$(awk -v s="$S_RPS" -v n="$N_RPS" 'BEGIN { printf "%.3f", (n > 0 ? s / n : 0) }')
RATIO_MET=$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t ? "true" : "false") }')
P99_MET=$(awk -v p="$S_P99" -v t="$TARGET_P99_MS" 'BEGIN { print (p < t ? "true" : "false") }')
# Error answers are cheap: a run with any is not a valid measurement.
if [ "$S_BAD" -gt 0 ] || [ "$S_ERR" -gt 0 ]; then
  RATIO_MET=false
  P99_MET=false
fi
met() { if [ "$1" = true ]; then echo met; else echo "not met"; fi; }

cat <<EOF

## stroom API vs nginx (static copy): GET $PATH_UNDER_TEST

wrk -t$THREADS -c$CONNS -d$DURATION --latency (after a $WARMUP warm-up), loopback, $(nproc) cores, nginx $WORKERS workers, body $BODY_BYTES bytes

| | stroom | nginx (static) |
| --- | ---: | ---: |
| requests/s | $S_RPS | $N_RPS |
| p50 latency (ms) | $S_P50 | $N_P50 |
| p99 latency (ms) | $S_P99 | $N_P99 |
| non-2xx/3xx responses | $S_BAD | $N_BAD |
| socket errors | $S_ERR | $N_ERR |

stroom/nginx requests/s: ${RATIO}x

Targets:
- requests/s >= ${TARGET_RATIO}x nginx: $(met "$RATIO_MET") (${RATIO}x)
- stroom p99 < ${TARGET_P99_MS} ms: $(met "$P99_MET") (${S_P99} ms)
EOF
if [ "$S_BAD" -gt 0 ] || [ "$S_ERR" -gt 0 ]; then
  echo "- stroom answered $S_BAD non-2xx/3xx responses and had $S_ERR socket errors: targets counted as not met"
fi

if [ -n "${OUT:-}" ]; then
  cat >"$OUT/api_vs_nginx.json" <<EOF
{
  "bench": "api_vs_nginx",
  "path": "$PATH_UNDER_TEST",
  "wrk": {"threads": $THREADS, "connections": $CONNS, "duration": "$DURATION", "warmup": "$WARMUP"},
  "cores": $(nproc),
  "nginx_workers": $WORKERS,
  "body_bytes": $BODY_BYTES,
  "stroom": {"requests_per_sec": $S_RPS, "p50_ms": $S_P50, "p99_ms": $S_P99, "non_2xx_3xx": $S_BAD, "socket_errors": $S_ERR},
  "nginx": {"requests_per_sec": $N_RPS, "p50_ms": $N_P50, "p99_ms": $N_P99, "non_2xx_3xx": $N_BAD, "socket_errors": $N_ERR},
  "ratio_requests_per_sec": $RATIO,
  "targets": {
    "ratio_min": $TARGET_RATIO, "ratio_met": $RATIO_MET,
    "p99_max_ms": $TARGET_P99_MS, "p99_met": $P99_MET
  }
}
EOF
  log "results: $OUT/api_vs_nginx.json"
fi
