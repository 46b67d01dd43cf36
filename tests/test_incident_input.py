"""The incident commands' input: times, durations, windows, filters, output formats, and bad
input ending in one clear line with no traceback. No store and no eBPF needed."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from groundtruth.cli import main
from incident.errors import IncidentError
from incident.filters import parse_remote, parse_user
from incident.progress import Progress
from incident.render import table_lines, write_csv
from incident.report_md import Code, cell, table
from incident.timeline import Entry
from incident.times import (
    NS,
    TimeError,
    Window,
    format_ns,
    get_zone,
    make_window,
    parse_duration_ns,
    parse_time,
)

# A fixed "now": 2026-11-26T16:00:00.5Z.
NOW = int(datetime(2026, 11, 26, 16, 0, 0, tzinfo=UTC).timestamp()) * NS + NS // 2
BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts, tz=UTC, ns: int = 0) -> int:
    return int(datetime(*parts, tzinfo=tz).timestamp()) * NS + ns


@pytest.mark.parametrize(
    "text,zone,expected",
    [
        ("now", UTC, NOW),
        ("NOW", UTC, NOW),
        ("now-1h", UTC, NOW - 3600 * NS),
        ("now - 15m", UTC, NOW - 900 * NS),
        ("now+5m", UTC, NOW + 300 * NS),
        ("15m", UTC, NOW - 900 * NS),
        ("2h", UTC, NOW - 7200 * NS),
        ("1h30m", UTC, NOW - 5400 * NS),
        ("1d", UTC, NOW - 86400 * NS),
        ("2026-11-26T14:05:00Z", UTC, at(2026, 11, 26, 14, 5)),
        ("2026-11-26t14:05:00z", UTC, at(2026, 11, 26, 14, 5)),
        ("2026-11-26T14:05:00+01:00", UTC, at(2026, 11, 26, 13, 5)),
        ("2026-11-26T14:05:00-0530", UTC, at(2026, 11, 26, 19, 35)),
        ("2026-11-26 14:05:00.123456789Z", UTC, at(2026, 11, 26, 14, 5, ns=123456789)),
        ("2026-11-26T14:05:00,5Z", UTC, at(2026, 11, 26, 14, 5, ns=NS // 2)),
        ("2026-11-26T14:05", UTC, at(2026, 11, 26, 14, 5)),
        ("2026-11-26", UTC, at(2026, 11, 26, 0, 0)),
        # Without an offset, the display timezone applies (winter: Berlin is UTC+1)...
        ("2026-11-26T14:05:00", BERLIN, at(2026, 11, 26, 13, 5)),
        # ...and its summer time too (UTC+2 in July).
        ("2026-07-01T14:05:00", BERLIN, at(2026, 7, 1, 12, 5)),
        # An explicit offset wins over the display timezone.
        ("2026-11-26T14:05:00Z", BERLIN, at(2026, 11, 26, 14, 5)),
        ("14:05", UTC, at(2026, 11, 26, 14, 5)),
        ("9:05:30", UTC, at(2026, 11, 26, 9, 5, 30)),
        ("14:05", BERLIN, at(2026, 11, 26, 13, 5)),
        ("14:05Z", BERLIN, at(2026, 11, 26, 14, 5)),
        ("1764165900", UTC, 1764165900 * NS),
        ("1764165900.25", UTC, 1764165900 * NS + NS // 4),
        ("1764165900123", UTC, 1764165900123 * 10**6),
        ("1764165900123456", UTC, 1764165900123456 * 10**3),
        ("1764165900123456789", UTC, 1764165900123456789),
        ("0", UTC, 0),
    ],
)
def test_times(text, zone, expected):
    assert parse_time(text, NOW, zone) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("yesterday", "cannot read time 'yesterday'"),
        ("", "cannot read time ''"),
        ("now-", "cannot read time 'now-'"),
        ("now-soon", "cannot read duration 'soon'"),
        ("now-0m", "is zero"),
        ("2026-13-01T00:00:00Z", "month must be in 1..12"),
        ("2026-11-26T25:00:00Z", "hour must be in 0..23"),
        ("2026-11-26T14:05:00+25:00", "offset +25:00 out of range"),
        ("12345678901234", "13/16/19 digits"),
        ("15x", "cannot read time '15x'"),
        ("1969-12-31T23:59:59Z", "before 1970"),
    ],
)
def test_bad_times_say_what_is_wrong(text, message):
    with pytest.raises(TimeError) as e:
        parse_time(text, NOW, UTC)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "text,ns",
    [
        ("30s", 30 * NS),
        ("15m", 900 * NS),
        ("1h30m", 5400 * NS),
        ("500ms", NS // 2),
        ("1w", 604800 * NS),
    ],
)
def test_durations(text, ns):
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["15", "m", "-5m", "1.5h", "5 minutes", "0s"])
def test_bad_durations(text):
    with pytest.raises(TimeError):
        parse_duration_ns(text)


@pytest.mark.parametrize(
    "since,start,end,expected",
    [
        ("15m", None, None, Window(NOW - 900 * NS, NOW)),
        (None, None, None, Window(NOW - 900 * NS, NOW)),  # the default --since
        (None, "1h", None, Window(NOW - 3600 * NS, NOW)),  # --to defaults to now
        (None, "now-2h", "now-1h", Window(NOW - 7200 * NS, NOW - 3600 * NS)),
    ],
)
def test_windows(since, start, end, expected):
    assert make_window(since, start, end, NOW, UTC) == expected


@pytest.mark.parametrize(
    "since,start,end,message",
    [
        ("15m", "1h", None, "either --since or --from/--to"),
        (None, None, "now", "--to needs --from"),
        (None, "now-1h", "now-2h", "the window is empty"),
        (None, "now", "now", "the window is empty"),
    ],
)
def test_bad_windows(since, start, end, message):
    with pytest.raises(TimeError) as e:
        make_window(since, start, end, NOW, UTC)
    assert message in str(e.value)


def test_zones_and_display():
    assert get_zone("UTC") is UTC
    assert get_zone("Europe/Berlin") == BERLIN
    with pytest.raises(TimeError, match="unknown timezone 'Mars/Olympus'"):
        get_zone("Mars/Olympus")
    t = at(2026, 11, 26, 14, 5, ns=123_456_789)
    assert format_ns(t, UTC) == "2026-11-26T14:05:00.123+00:00"
    assert format_ns(t, BERLIN) == "2026-11-26T15:05:00.123+01:00"
    assert format_ns(t, timezone(timedelta(hours=-5)), "microseconds") == (
        "2026-11-26T09:05:00.123456-05:00"
    )


@pytest.mark.parametrize(
    "text,expected",
    [
        ("10.0.0.1", ("10.0.0.1", 0)),
        ("10.0.0.1:5432", ("10.0.0.1", 5432)),
        (":443", ("", 443)),
        ("::1", ("::1", 0)),
        ("[2001:db8::1]:80", ("2001:db8::1", 80)),
        ("[::1]", ("::1", 0)),
        ("", ("", 0)),
    ],
)
def test_remote_filter(text, expected):
    assert parse_remote(text) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("db.internal:5432", "not an IP address"),
        ("10.0.0.1:99999", "port must be a number"),
        ("10.0.0.1:http", "port must be a number"),
        (":", "give an address, a port, or both"),
    ],
)
def test_bad_remote_filter(text, message):
    with pytest.raises(IncidentError, match=message):
        parse_remote(text)


def test_user_filter():
    assert parse_user("root") == 0
    assert parse_user("1000") == 1000
    assert parse_user(None) is None
    with pytest.raises(IncidentError, match="unknown user 'no-such-user-here'"):
        parse_user("no-such-user-here")


def entry(t: int, kind: str, detail: str, pid: int = 42) -> Entry:
    return Entry(t, "h", "process", kind, pid, "prog", "", "h:42:1", detail, {"argv": ["a"]})


def test_table_aligns_and_cuts_only_to_a_width():
    entries = [
        entry(at(2026, 1, 1, 0, 0), "exec", "x" * 200),
        entry(at(2026, 1, 1, 0, 1), "exit", "ok"),
    ]
    full = table_lines(entries, UTC)
    assert full[1].endswith("x" * 200)
    assert full[0].index("DETAIL") == full[1].index("xxx")  # columns line up
    cut = table_lines(entries, UTC, width=100)
    assert all(len(line) <= 100 for line in cut) and cut[1].endswith("…")
    # A newline in a command line (python -c "a\nb") cannot split a row.
    (row,) = table_lines([entry(0, "exec", "python -c 'a\nb'\x1b[2J")], UTC)[1:]
    assert row.endswith("python -c 'a\\nb'\\x1b[2J")


def test_csv_keeps_commas_and_quotes_intact():
    import csv

    out = io.StringIO()
    write_csv([entry(5 * NS, "exec", 'sh -c "a, b"')], out, UTC)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["detail"] == 'sh -c "a, b"' and rows[0]["fields"] == '{"argv": ["a"]}'


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal():
    stream = Terminal()
    with Progress(stream).step("reading") as step:
        step.note = "7 rows"
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    assert text.rsplit("\r", 1)[1].startswith("reading: 7 rows (")
    quiet = Terminal()
    with Progress(quiet, quiet=True).step("reading"):
        pass
    assert quiet.getvalue() == ""


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["timeline", "--host", "h", "--since", "soon"], "cannot read duration 'soon'"),
        (["timeline", "--host", "h", "--from", "yesterday"], "cannot read time 'yesterday'"),
        (["timeline", "--host", "h", "--from", "now", "--to", "1h"], "the window is empty"),
        (["timeline", "--host", "h", "--remote", "example.com"], "not an IP address"),
        (["timeline", "--host", "h", "--tz", "Nowhere/Land"], "unknown timezone"),
        (["timeline", "--host", "h", "--limit", "0"], "--limit must be a positive number"),
        (["ancestry"], "give a PID (with --host) or --key"),
        (["ancestry", "123"], "a PID needs --host"),
        (["ancestry", "--key", "nonsense"], "not a process key: 'nonsense'"),
        (["ancestry", "1", "--host", "h", "--at", "noon"], "cannot read time 'noon'"),
        (["postmortem", "--from", "later", "-o", "x"], "cannot read time 'later'"),
        (["postmortem", "--from", "1h", "--graph-limit", "0", "-o", "x"], "--graph-limit"),
    ],
)
def test_bad_input_is_one_line_before_the_store_is_touched(capsys, tmp_path, argv, message):
    # The data directory does not exist: each error is found before the store is needed.
    missing = tmp_path / "no-store"
    code, out, err = run(capsys, *argv, "--data-dir", missing)
    assert code == 2 and out == ""
    assert err.startswith(f"groundtruth {argv[0]}: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not missing.exists()


@pytest.mark.parametrize("command", [["timeline", "--host", "h"], ["ancestry", "1", "--host", "h"]])
def test_a_missing_store_is_one_line(capsys, tmp_path, command):
    code, _, err = run(capsys, *command, "--data-dir", tmp_path / "nothing-here")
    assert code == 2 and err.count("\n") == 1
    assert "no event store" in err and "nothing-here" in err


def test_an_unreachable_server_is_one_line(capsys):
    from testservices.service import free_port

    url = f"clickhouse://default@127.0.0.1:{free_port()}/groundtruth"
    code, _, err = run(capsys, "timeline", "--host", "h", "--store-url", url)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("groundtruth timeline: reading the store clickhouse://default@127.0.0.1")


def test_an_empty_store_says_it_has_no_tables(capsys, chdb_database):
    data_dir, database = chdb_database
    code, _, err = run(
        capsys, "timeline", "--host", "h", "--data-dir", data_dir, "--database", database
    )
    assert code == 1 and err.count("\n") == 1
    assert "has no groundtruth tables yet" in err


@pytest.mark.parametrize(
    "value,markdown",
    [
        ("exit 7 (error)", "exit 7 (error)"),
        ("a|b", "a\\|b"),
        ("line\nbreak", "line break"),
        ("", " "),
        (Code("python -c 'x = 2 * 3 | <b>'"), "`python -c 'x = 2 * 3 \\| <b>'`"),
        (Code("echo `date`"), "`` echo `date` ``"),  # CommonMark strips one space each side
        (Code("a\nb"), "`a b`"),
    ],
)
def test_report_cells_cannot_break_the_table(value, markdown):
    assert cell(value) == markdown
    (row,) = table(["X"], [[value]])[2:]
    assert row == f"| {markdown} |"


def test_dot_quoting_survives_hostile_labels():
    """Ids and labels with quotes, backslashes, newlines and braces still make a valid SVG."""
    import xml.etree.ElementTree as ET

    from graph.nodegraph_fields import edge, node
    from incident.graph_svg import render_svg, to_dot
    from incident.postmortem_cli import graph_focus

    hostile = 'sh -c "echo \\\\"; }\n<b>&amp;'
    graph = {
        "nodes": [
            node("h:1:1", "init", "process", detail__argv="/sbin/init"),
            node('h:2:"2"', "sh", "process", detail__argv=hostile, highlighted=True),
        ],
        "edges": [edge("h:1:1", 'h:2:"2"', "spawned")],
    }
    svg = ET.fromstring(render_svg(to_dot(graph, 'title "quoted"')))
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert 'title "quoted"' in texts and "init" in texts
    assert 'sh -c "echo \\\\"; }' in texts  # the first line of the argv, verbatim
    assert graph_focus("", []) == ""
    alert = Entry(0, "h", "alert", "alert", 0, "", "", "", "", {"fingerprint": "f1"})
    assert graph_focus("", [alert, alert]) == "f1"
    assert graph_focus("asked", [alert]) == "asked"
