"""Query parameters reach both backends as values, never as SQL."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.params import ParameterError, check, encode, to_pyformat
from testservices.store_helpers import open_test_store

# Any text ClickHouse can hold as UTF-8 (no lone surrogates), quotes and escapes included.
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
TRICKY = ["", "'", "\\", "\\'", "'; DROP TABLE x; --", "a\nb\tc\r\0", "{x:String}", "%s %(x)s"]


@pytest.fixture(params=["clickhouse", "chdb"])
def store(request, clickhouse_url, chdb_database):
    s = open_test_store(request.param, clickhouse_url, chdb_database)
    s.backend.ensure_database()
    yield s
    s.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=texts, items=st.lists(texts, max_size=5), n=st.integers(0, 2**64 - 1))
def test_values_come_back_exactly(store, text, items, n):
    row = store.query(
        "SELECT {s:String}, {a:Array(String)}, {n:UInt64}, length({s:String})",
        {"s": text, "a": items, "n": n},
    )
    assert row == [(text, items, n, len(text.encode()))]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_are_data(store, text):
    assert store.query("SELECT {s:String} = {t:String}", {"s": text, "t": text}) == [(1,)]
    assert store.query("SELECT {s:String}", {"s": text}) == [(text,)]


def test_a_literal_percent_survives_translation(store):
    assert store.query("SELECT '100%', {n:Int32}", {"n": -5}) == [("100%", -5)]


@pytest.mark.parametrize(
    "sql, params",
    [
        ("SELECT {n:UInt32}", {"n": "1"}),
        ("SELECT {n:UInt32}", {"n": -1}),
        ("SELECT {n:UInt8}", {"n": 256}),
        ("SELECT {n:UInt8}", {"n": True}),
        ("SELECT {s:String}", {"s": b"bytes"}),
        ("SELECT {a:Array(String)}", {"a": "not a list"}),
        ("SELECT {a:Array(UInt8)}", {"a": [1, "2"]}),
        ("SELECT {s:String}", {}),
        ("SELECT 1", {"extra": 1}),
        ("SELECT {d:DateTime}", {"d": 0}),
        ("SELECT {s:String}, {s:UInt8}", {"s": "x"}),
    ],
)
def test_bad_parameters_are_refused_before_any_sql(sql, params):
    with pytest.raises(ParameterError):
        check(sql, params)


def test_encoding_and_translation_by_example():
    assert encode("a\\b\n'", "String") == "a\\\\b\\n'"
    assert encode(["it's", "\\"], "Array(String)") == "['it\\'s','\\\\']"
    assert encode([1, 2], "Array(UInt8)") == "[1,2]"
    assert to_pyformat("SELECT '%', {a:String}") == "SELECT '%%', %(a)s"
