"""eBPF probes, one per concern. Each compiles one C file from exporter/bpf/ (see base.BpfProbe)."""
