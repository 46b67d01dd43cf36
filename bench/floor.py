"""The floor a probe's consumer is measured against: the same BPF program and ring buffer, with
a consumer that only counts what arrives."""

from __future__ import annotations


def counting_only(probe_class):
    """A subclass of ``probe_class`` whose events are counted in ``seen`` and never decoded."""

    class CountingOnly(probe_class):
        seen = 0
        read_directly = False  # bcc's per-event callback: the consumer the issue measures from

        def _on_event(self, _ctx, _data, _size) -> None:
            self.seen += 1

    return CountingOnly
