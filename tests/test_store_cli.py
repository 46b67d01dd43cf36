"""``groundtruth db`` against a real server and chDB, through the console script's main()."""

from groundtruth.cli import main
from store.db import open_store
from store.migrations import LATEST
from testservices.clickhouse import fresh_database_name


def test_db_migrate_twice_on_a_server(clickhouse_url, capsys):
    assert main(["db", "migrate", "--store-url", clickhouse_url]) == 0
    first = capsys.readouterr().out
    assert main(["db", "migrate", "--store-url", clickhouse_url]) == 0
    second = capsys.readouterr().out
    assert "migration 1" in first and "s3cret" not in first
    assert second.strip().endswith(f"schema version {LATEST}, up to date")
    assert main(["db", "version", "--store-url", clickhouse_url]) == 0
    assert f"schema version {LATEST} (this code: {LATEST})" in capsys.readouterr().out


def test_db_migrate_on_chdb(chdb_dir):
    # The embedded store's database is "groundtruth"; the session's chDB directory is shared.
    assert main(["db", "migrate", "--data-dir", str(chdb_dir)]) == 0
    assert main(["db", "retention", "--data-dir", str(chdb_dir), "--retention-days", "3"]) == 0
    store = open_store(None, data_dir=chdb_dir)
    assert store.query("SELECT max(version) FROM schema_migrations") == [(LATEST,)]
    store.close()


def test_bad_password_is_one_line_and_status_1(clickhouse_server, capsys):
    url = clickhouse_server.url(fresh_database_name(), password="nope")
    assert main(["db", "migrate", "--store-url", url]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nope" not in err
    assert "password" in err.lower() or "authentication" in err.lower()


def test_a_malformed_url_says_what_is_expected(capsys):
    assert main(["db", "migrate", "--store-url", "http://x:9000/db"]) == 1
    assert "clickhouse://user:password@host:port/database" in capsys.readouterr().err
