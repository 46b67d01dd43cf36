"""groundtruth's eBPF exporter: probes -> decoders -> sinks (Prometheus metrics, event store)."""

__version__ = "0.1.0"
