"""Counting events per key in a sliding time window, bounded: crash loops, connect bursts."""

from __future__ import annotations

from collections import deque

KEYS_MAX = 4096


class WindowCounts:
    """``add(key, t)`` returns how many events the key had within ``window_ns`` up to t, once
    that reaches ``n`` (and starts the count again); 0 otherwise. Times are event times, so
    recorded events replay the same way."""

    def __init__(self, n: int, window_ns: int, keys_max: int = KEYS_MAX):
        self.n = max(1, int(n))
        self.window_ns = int(window_ns)
        self.keys_max = keys_max
        self._times: dict[object, deque] = {}

    def add(self, key, t: int) -> int:
        times = self._times.get(key)
        if times is None:
            if len(self._times) >= self.keys_max:
                del self._times[next(iter(self._times))]  # the key idle the longest, roughly
            times = self._times[key] = deque()
        times.append(t)
        horizon = t - self.window_ns
        while times[0] < horizon:
            times.popleft()
        if len(times) < self.n:
            return 0
        count = len(times)
        times.clear()
        return count
