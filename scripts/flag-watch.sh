#!/usr/bin/env bash
# Runs the test suite while an exporter of its own watches the host with the flag detector on,
# then reports the security flags raised on the suite's processes that no test meant to cause
# (see scripts/flag_watch.py). Usage: scripts/flag-watch.sh [OUT_DIR] [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d /var/tmp/flag-watch.XXXXXX)}
shift || true
mkdir -p "$out"
port=$(.venv/bin/python -c 'from testservices.service import free_port; print(free_port())')
# Every flag stored, none counted only (no repeat window, so no per-window budget either): each
# one can then be matched to the test that was running.
printf 'thresholds:\n  flag_repeat_window_seconds: 0\n' >"$out/mixin.yaml"
.venv/bin/groundtruth run --host flag-watch --no-selftest --listen "127.0.0.1:$port" \
    --mixin-config "$out/mixin.yaml" --sink "jsonl:$out/events.jsonl" >"$out/exporter.log" 2>&1 &
exporter=$!
trap 'kill -TERM $exporter 2>/dev/null || true' EXIT
until grep -q "metrics on" "$out/exporter.log"; do
    kill -0 $exporter || { cat "$out/exporter.log"; exit 2; }
    sleep 0.5
done
rm -f "$out/spans.jsonl"
GT_TEST_SPANS="$out/spans.jsonl" .venv/bin/python -m pytest -ra -p scripts.flag_watch "$@" &
suite=$!
status=0
wait $suite || status=$?
.venv/bin/python -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1]).read().decode())' \
    "http://127.0.0.1:$port/metrics" >"$out/metrics.txt"
kill -TERM $exporter
wait $exporter || true
trap - EXIT
.venv/bin/python -m scripts.flag_watch report "$out/events.jsonl" "$out/spans.jsonl" \
    --root-pid $suite --metrics "$out/metrics.txt"
echo "suite (pid $suite) exit status: $status; events and spans in $out"
