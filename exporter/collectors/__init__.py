"""Prometheus collectors: each reads its source (BPF maps, cgroupfs, /proc) at scrape time."""
