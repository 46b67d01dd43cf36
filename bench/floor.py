"""The floor a probe's consumer is measured against: the same BPF program and ring buffer, with
a consumer that only counts what arrives: through bcc's per-event callback (``counting_only``,
the floor the issues' CPU-per-event goals name), or read from the ring buffer's memory as the
exporter reads it (``counting_directly``, the cheapest consumer there is: the kernel side's cost
with as little as possible of the user side's)."""

from __future__ import annotations


def counting_only(probe_class):
    """A subclass of ``probe_class`` whose events are counted in ``seen`` and never decoded."""

    class CountingOnly(probe_class):
        seen = 0
        read_directly = False  # bcc's per-event callback: the consumer the issue measures from

        def _on_event(self, _ctx, _data, _size) -> None:
            self.seen += 1

    return CountingOnly


def counting_directly(probe_class):
    """A subclass of ``probe_class`` that reads its ring buffer as the exporter does (the memory
    map, a batch per drain) and only counts the records, in ``seen``."""

    class CountingDirectly(probe_class):
        seen = 0

        def decode_batch(self, records: list) -> list:
            self.seen += len(records)
            return []

        def decode_columns(self, records: list) -> tuple[list, list]:
            self.seen += len(records)
            return [], []

    return CountingDirectly
