"""The on-disk spool: first in, first out, across restarts, bounded, never half a batch."""

import json

from store.spool import Spool


def cols(first: int, n: int) -> dict:
    return {"event_id": [f"e{i}" for i in range(first, first + n)], "n": list(range(n))}


def test_batches_come_back_in_order_after_a_restart(tmp_path):
    spool = Spool(tmp_path, 10**6, on_drop=lambda n: None)
    spool.append("process_events", cols(0, 3), received=100.0)
    spool.append("tcp_connection_events", cols(3, 2), received=101.0)
    (tmp_path / "000000000009-5-1.json.tmp").write_text('{"table": "cut short')  # a crash
    again = Spool(tmp_path, 10**6, on_drop=lambda n: None)
    assert (again.events, len(again), again.oldest_received()) == (5, 2, 100.0)
    assert not list(tmp_path.glob("*.tmp"))
    segment, table, columns = again.peek()
    assert (table, columns, segment.rows) == ("process_events", cols(0, 3), 3)
    again.pop()
    again.append("process_events", cols(5, 1))  # numbered after what was there
    assert [again.peek()[1], again.pop().rows, again.peek()[1]] == [
        "tcp_connection_events",
        2,
        "process_events",
    ]


def test_a_full_spool_drops_the_oldest_and_counts_them(tmp_path):
    dropped = []
    one = len(json.dumps({"table": "t", "columns": cols(0, 2)}))  # every segment's size
    spool = Spool(tmp_path, max_bytes=3 * one, on_drop=dropped.append)
    for _ in range(5):
        spool.append("t", cols(0, 2))
    assert dropped == [2, 2] and spool.events == 6 and spool.bytes <= 3 * one
    assert spool.peek()[0].seq == 2  # the two oldest went


def test_a_batch_bigger_than_the_spool_is_dropped_whole(tmp_path):
    dropped = []
    spool = Spool(tmp_path, max_bytes=50, on_drop=dropped.append)
    spool.append("t", cols(0, 100))
    assert dropped == [100] and spool.events == 0 and not list(tmp_path.iterdir())


def test_set_aside_keeps_the_batch_out_of_the_queue(tmp_path):
    spool = Spool(tmp_path, 10**6, on_drop=lambda n: None)
    spool.append("t", cols(0, 4))
    spool.set_aside()
    assert spool.events == 0 and len(list((tmp_path / "rejected").iterdir())) == 1
    assert Spool(tmp_path, 10**6, on_drop=lambda n: None).events == 0
