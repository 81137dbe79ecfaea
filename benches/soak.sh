#!/usr/bin/env bash
# The soak test: 10 minutes of mixed load on `stroom serve` at a fixed rate
# (forecast reads, series queries, map renders, an upload every 30 s, a
# backtest every two minutes), on loopback only; see benches/soak.py for
# what it reports and its options (--minutes, --rate, --demo DIR, --out FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 benches/soak.py "$@"
