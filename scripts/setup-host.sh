#!/usr/bin/env bash
# Prepares this host for groundtruth: Debian packages, kernel headers usable by bcc, tracefs.
# Idempotent; run as root (make setup does). See README "What make setup changes on the host".
set -euo pipefail

packages=(
    bpfcc-tools python3-bpfcc libbpf1   # bcc (Python bindings live in Debian's python3)
    linux-headers-amd64                 # bcc needs *some* headers to compile at all
    python3-venv
    prometheus prometheus-alertmanager  # promtool, amtool; real servers in tests
    clickhouse-server clickhouse-client # real event store in tests
    zookeeper                           # ON CLUSTER DDL tests (ClickHouse distributed DDL)
    graphviz                            # postmortem graphs, graphapi's investigation pages
    chromium                            # the pages' tests drive a real headless browser
    wrk                                 # TCP benchmark load
    iproute2                            # ip netns: the cross-host test's two "hosts"
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian starts packaged servers on install where it can; tests run their own on free ports.
for svc in clickhouse-server prometheus prometheus-alertmanager zookeeper; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

# bcc compiles against /lib/modules/$(uname -r)/build. When the running kernel has no headers
# package (a VM kernel), point it at the newest installed Debian headers. Our BPF programs read
# no struct through these headers' layouts: offsets come from the running kernel's BTF.
kdir="/lib/modules/$(uname -r)"
if [ ! -e "$kdir/build" ]; then
    hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
    common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$hdr" ] || [ -z "$common" ]; then
        echo "setup: no kernel headers under /usr/src (linux-headers-amd64 failed?)" >&2
        exit 1
    fi
    mkdir -p "$kdir"
    ln -sfn "$hdr" "$kdir/build"
    ln -sfn "$common" "$kdir/source"
    echo "setup: $kdir/build -> $hdr"
fi

# Tracepoints are found through tracefs.
if [ ! -d /sys/kernel/tracing/events ]; then
    mount -t tracefs tracefs /sys/kernel/tracing
    echo "setup: mounted tracefs on /sys/kernel/tracing"
fi
