"""Store URLs and sink specs: what they open, where they spool, and clear errors."""

import subprocess
import sys

import pytest

from schema.pipeline_stats import PipelineStats
from store.db import StoreConfigError, open_store, parse_url, redact
from store.sink import SPOOL_ROOT, default_spool_dir, open_sink
from testservices.clickhouse import CLUSTER_NAME
from testservices.service import free_port
from testservices.store_helpers import make_events, stored_ids


def test_a_full_url():
    assert parse_url("clickhouse://u:p%40ss@db.example:9001/events?cluster=c1") == dict(
        host="db.example",
        port=9001,
        user="u",
        password="p@ss",
        database="events",
        cluster="c1",
        on_cluster_ddl=False,
    )
    assert parse_url("clickhouse://h/d?cluster=c&ddl=on_cluster")["on_cluster_ddl"] is True


def test_defaults():
    args = parse_url("clickhouse://localhost")
    assert (args["port"], args["user"], args["password"], args["database"]) == (
        9000,
        "default",
        "",
        "groundtruth",
    )


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://h:1/db", "is not clickhouse://"),
        ("clickhouse://u:secret@h:99999/db", "out of range"),
        ("clickhouse://h/db?clutser=x", "unknown options"),
        ("clickhouse://h/db?cluster=c&ddl=zookeeper", "ddl is per_server or on_cluster"),
        ("clickhouse://h/bad-name", "not a valid identifier"),
    ],
)
def test_bad_urls_say_why_without_the_password(url, says):
    with pytest.raises(ValueError, match=says) as err:
        open_store(url)
    assert "secret" not in str(err.value)


def test_redact_hides_only_the_password():
    assert redact("clickhouse://u:pw@h:1/d") == "clickhouse://u:***@h:1/d"


def test_each_store_gets_its_own_spool():
    assert default_spool_dir("clickhouse://u:p@h:9001/ev", "/x") == SPOOL_ROOT / "h-9001-ev"
    assert default_spool_dir(None, "/var/lib/gt/chdb") == SPOOL_ROOT / "chdb-var-lib-gt-chdb"
    assert default_spool_dir("chdb:/a/b", "/x") == SPOOL_ROOT / "chdb-a-b"


def test_cluster_needs_a_server():
    with pytest.raises(StoreConfigError, match="cluster mode needs a ClickHouse server"):
        open_store("chdb:/tmp/x", cluster="c")


def test_open_sink_with_a_cluster_url(clickhouse_cluster, tmp_path):
    url = clickhouse_cluster[0].url("sink_spec") + f"?cluster={CLUSTER_NAME}"
    writer = open_sink(url, PipelineStats(), spool_dir=tmp_path / "spool")
    assert writer.store.cluster == CLUSTER_NAME
    events = make_events(20)
    writer.write(events)
    writer.close()
    reader = open_store(url)
    assert sorted(stored_ids(reader)) == sorted(e.event_id for e in events)
    reader.close()


def test_a_chdb_directory_held_by_another_process_is_a_clear_error(tmp_path):
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CHDB, str(held)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreConfigError, match="one process at a time"):
            open_store(f"chdb:{held}")
    finally:
        holder.kill()
        holder.wait()


HOLD_CHDB = """
import sys, time
from chdb import state
conn = state.connect(sys.argv[1])
conn.query("SELECT 1")
print("holding", flush=True)
time.sleep(60)
"""


# ---- no password in any output (issue 16) ------------------------------------------------------

SECRET = "S3cret"
GROUNDTRUTH = [sys.executable, "-m", "groundtruth.cli"]
# Malformed in every way the parser meets: a password holding "/" (what follows looks like a
# port), one holding "@" past the host, a secret in a query option, a broken IPv6 host, a
# misspelt scheme.
BAD_URLS = [
    f"clickhouse://writer:{SECRET}/x@127.0.0.1:9000/db",
    f"clickhouse://writer:/{SECRET}@127.0.0.1:9000/db",
    f"clickhouse://writer:{SECRET}@127.0.0.1:9000/db?password={SECRET}",
    f"clickhouse://writer:{SECRET}@[::1/db",
    f"clickhouses://writer:{SECRET}@127.0.0.1:9000/db",
]


def store_url_commands(tmp_path, url: str) -> dict[str, list[str]]:
    """Every command that takes a store URL, with it."""
    store = ["--store-url", url]
    return {
        "run": ["run", "--listen", f"127.0.0.1:{free_port()}", "--sink", url],
        "up": ["up", "--listen", f"127.0.0.1:{free_port()}", "--sink", url,
               "--data-dir", str(tmp_path / "up-chdb"), "--graphapi-listen", "127.0.0.1:0"],
        "db migrate": ["db", "migrate", *store],
        "db retention": ["db", "retention", *store],
        "db version": ["db", "version", *store],
        "graphapi": ["graphapi", "--listen", "127.0.0.1:0", *store],
        "timeline": ["timeline", "--host", "h", *store],
        "ancestry": ["ancestry", "--host", "h", "1", *store],
        "postmortem": ["postmortem", "-q", "--from", "2026-01-01T00:00:00Z", "-o", str(tmp_path),
                       *store],
    }  # fmt: skip


def run_all(commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Every command at once (each fails at start-up), with its exit status and output."""
    procs = {
        name: subprocess.Popen(
            [*GROUNDTRUTH, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, argv in commands.items()
    }
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def assert_one_line_without_the_secret(name: str, result: subprocess.CompletedProcess) -> None:
    assert result.returncode in (1, 2), (name, result.stderr)
    assert SECRET not in result.stdout + result.stderr, (name, result.stderr)
    assert "Traceback" not in result.stderr, (name, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)


@pytest.mark.parametrize("url", BAD_URLS)
def test_no_command_prints_the_password_of_a_malformed_url(tmp_path, url):
    results = run_all(store_url_commands(tmp_path, url))
    for name, result in results.items():
        assert_one_line_without_the_secret(name, result)
        assert "groundtruth" in result.stderr, (name, result.stderr)


def test_no_command_prints_a_wrong_password(clickhouse_server, tmp_path):
    """The server refuses the password: the reading and migrating commands say so in one line.
    (The exporter's commands start and keep retrying a store that refuses them.)"""
    url = clickhouse_server.url("secret_check", password=SECRET + "-wrong")
    commands = store_url_commands(tmp_path, url)
    results = run_all({k: v for k, v in commands.items() if k not in ("run", "up")})
    for name, result in results.items():
        assert_one_line_without_the_secret(name, result)
