"""The investigation pages on recorded events (tests/graphapi_events.py, plus a flagged process
with a hostile argv and an alert), on ClickHouse 18.16 and on chDB; then in a real browser,
behind a token, which writes the screenshots of docs/screenshots/ (regenerate them with
``GROUNDTRUTH_SCREENSHOTS_DIR=docs/screenshots pytest tests/test_graphapi_pages.py``).

Every count and every text asserted follows from the events the test wrote.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from graphapi import create_app
from graphapi.server import make_server
from schema.events import FlagEvent
from tests import graphapi_events as E
from tests.browser import Recorder, chromium, shot
from testservices.store_helpers import database_with

TOKEN = "pages-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = ["/tmp/.cache/payload", "<script>alert(1)</script>", 'it\'s "quoted" &amp;', "ünïcødé ✓"]
PAYLOAD = E.key(E.A, 150)
FINGERPRINT = "a1b2c3d4e5f60718"
# The node whose details are open when the page loads: the focus.
SELECTED_NODE = r'<section id="node-\d+" class="node-details selected" data-node="([^"]*)"'


def events() -> list:
    """The graph tests' events, and sh (pid 100) running a payload from /tmp, flagged."""
    ev = E.events()
    ev += E.spawn(E.A, 150, 100, E.T0 + 60 * E.S, "payload", HOSTILE, end=E.T0 + 62 * E.S,
                  exit_code=3)  # fmt: skip
    ev.append(
        FlagEvent(
            event_id="f1", kind="rule", time_ns=E.T0 + 60 * E.S + 2000, host=E.A,
            rule_id="exec_from_tmp", flag_class="security", severity="high",
            technique="T1204.002", description=f"{HOSTILE[0]} executed (from /tmp)",
            process_key=PAYLOAD, pid=150, comm="payload", program="payload",
            parent_key=E.key(E.A, 100), uid=1000, event_time_ns=E.T0 + 60 * E.S + 1000,
        )
    )  # fmt: skip
    return ev


@pytest.fixture(scope="module", params=["clickhouse", "chdb"])
def store(request, clickhouse_server, chdb_dir):
    with database_with(events(), request.param, clickhouse_server, chdb_dir) as s:
        yield s


def app_with_alert(store):
    app = create_app({"STORE": store, "TOKEN": TOKEN, "TESTING": True})
    reply = app.test_client().post("/api/alerts/webhook", json=E.alert_payload(), headers=AUTH)
    assert reply.status_code == 200 and reply.get_json()["stored"] == 1
    return app


@pytest.fixture(scope="module")
def app(store):
    return app_with_alert(store)


@pytest.fixture
def client(app):
    client = app.test_client()
    client.set_cookie("groundtruth_token", TOKEN)
    return client


def page(client, path: str, status: int = 200, **args) -> str:
    reply = client.get(path, query_string={**E.WINDOW, **args})
    body = reply.get_data(as_text=True)
    assert reply.status_code == status, body[-2000:]
    assert reply.mimetype == "text/html"
    csp = reply.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp
    return body


def test_overview_counts_what_the_events_say(client):
    body = page(client, "/")
    rows = re.findall(r"<tr>\s*<td><a [^>]*>(host-[ab])</a></td>((?:\s*<td class=[^>]*>\d+</td>)+)",
                      body)  # fmt: skip
    counts = {host: [int(n) for n in re.findall(r">(\d+)<", cells)] for host, cells in rows}
    # host-a: sh, curl, five true, false, wget, entrypoint/app, payload (systemd's scan is an
    # hour before the window); false and payload failed; curl's two and wget's connections.
    # host-b: the worker (nginx's scan is before the window), two accepted connections.
    assert counts == {"host-a": [11, 2, 0, 3, 0], "host-b": [1, 0, 0, 2, 0]}
    assert "exec_from_tmp" in body and "focus=trace%3D" in body
    assert f"focus=alert%3D{FINGERPRINT}" in body and "GroundtruthProcessCrashLoop" in body


def test_hostile_argv_is_escaped_everywhere(client):
    """Every page that shows the payload's argv shows it as text."""
    for path, args in [
        ("/graph", {"focus": PAYLOAD}),
        (f"/process/{PAYLOAD}", {}),
        ("/timeline", {"host": E.A}),
    ]:
        body = page(client, path, **args)
        assert "<script>alert" not in body, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, path
        assert "ünïcødé ✓" in body
        assert len(re.findall(r"<script\b", body)) == 1  # pages.js
    # What the user typed comes back escaped too, in the form and in the message.
    for args in ({"focus": "host=<script>alert(1)</script>"}, {"host": '"><script>x</script>'}):
        reply = client.get("/graph", query_string={**E.WINDOW, **args})
        assert reply.status_code in (200, 404)
        assert len(re.findall(r"<script\b", reply.get_data(as_text=True))) == 1


def test_graph_page_draws_the_apis_graph_and_links_every_node(client, app):
    api = app.test_client().get(
        "/api/graph", query_string={**E.WINDOW, "focus": E.key(E.A, 101)}, headers=AUTH
    )
    body = page(client, "/graph", focus=E.key(E.A, 101))
    ids = re.findall(r'data-node="([^"]*)"', body)
    assert ids == [n["id"] for n in api.get_json()["nodes"]]  # the same nodes, in order
    # Each node is drawn, is a link to its details, and its details offer to focus on it.
    sections = re.findall(r'<section id="node-(\d+)"[^>]*data-node="([^"]*)"(.*?)</section>', body,
                          re.S)  # fmt: skip
    assert [(int(i), node_id) for i, node_id, _ in sections] == list(enumerate(ids))
    for i, node_id, details in sections:
        assert f'<g id="n{i}" class="node">' in body
        assert f'xlink:href="#node-{i}"' in body
        (refocus,) = re.findall(r'class="refocus" href="([^"]*)"', details)
        args = urllib.parse.parse_qs(urllib.parse.urlparse(refocus.replace("&amp;", "&")).query)
        assert args["focus"] == [node_id]
    assert 'class="node-details selected"' in body  # the focus's details, shown unclicked
    # curl's details list its connection to host-b's nginx with the bytes both ends counted
    # (E.conn: 200 B sent, 20 B received), linked to nginx's details.
    curl = next(d for _, node_id, d in sections if node_id == E.key(E.A, 101))
    # Its stats named by what they count: no children, its two connections (a1 and a2).
    assert "<dt>Children</dt><dd>0</dd>" in curl and "<dt>Connections</dt><dd>2</dd>" in curl
    assert "Main stat" not in body and "Secondary stat" not in body
    nginx = ids.index(E.key(E.B, 200))
    assert re.search(
        rf'connected → <a href="#node-{nginx}">nginx</a>: 1 conns, 200 B sent, 20 B received', curl
    )


def test_window_form_says_its_times_are_utc(client):
    """Without scripts the window form's from/to are UTC, as typed into the API, and say so."""
    body = page(client, "/graph")
    assert '<span class="window-zone">in UTC (…Z), or epoch ms</span>' in body
    for name in ("from", "to"):
        (value,) = re.findall(rf'<input name="{name}"[^>]*value="([^"]*)"', body)
        assert utc_time(value) == datetime.fromtimestamp(int(E.WINDOW[name]) / 1000, UTC)


def test_collapse_and_limit_controls(client):
    collapsed = re.findall(r'data-node="(group=[^"]*)"', page(client, "/graph", host=E.A))
    assert collapsed == [f"group={E.key(E.A, 100)}|true"]
    assert (
        re.findall(r'data-node="(group=[^"]*)"', page(client, "/graph", host=E.A, collapse=6)) == []
    )
    body = page(client, "/graph", host=E.A, limit=3)
    assert len(re.findall(r'data-node="', body)) == 3 and 'data-node="more=' in body
    assert "is not a whole number from 2" in page(client, "/graph", 400, collapse=1)


def test_a_missing_focus_or_host_and_an_empty_window_say_so(client):
    assert "is not understood" in page(client, "/graph", 400, focus="???")
    missing = page(client, "/graph", 404, focus="host-a:999:1")
    assert "Try the last" in missing or "no " in missing
    assert "hosts in the store: host-a, host-b" in page(client, "/timeline", 404, host="nope")
    empty = page(client, "/", **{"from": "1000", "to": "2000"})
    assert "No events in this window" in empty and 'class="wider"' in empty


def test_process_page_shows_ancestry_children_flags(client):
    body = page(client, f"/process/{E.key(E.A, 100)}")
    ancestry = re.findall(r"<li[^>]*><a href=\"/process/([^?\"]*)", body)
    assert [urllib.parse.unquote(k) for k in ancestry] == [E.key(E.A, 1), E.key(E.A, 100)]
    for pid in (101, 110, 120, 130, 140, 150):
        assert f">{pid}</a>" in body
    assert "<dt>Executable</dt><dd><code>/bin/sh</code>" in body
    assert "<dt>Working directory</dt><dd><code>/srv/app</code>" in body
    flagged = page(client, f"/process/{PAYLOAD}")
    assert "exec_from_tmp" in flagged and "exit 3" in flagged


def test_timeline_takes_the_timeline_commands_filters(client):
    body = page(client, "/timeline", host=E.A, program="curl")
    assert "curl http://10.0.0.2/" in body and "wget" not in body
    remote = page(client, "/timeline", host=E.A, remote="93.184.216.34:443")
    assert "93.184.216.34:443" in remote and "10.0.0.2:80" not in remote
    assert "not an IP address" in page(client, "/timeline", 400, host=E.A, remote="x")


def test_token_login_cookie_and_safe_redirects(app):
    client = app.test_client()
    reply = client.get("/graph", query_string={"focus": PAYLOAD})
    assert reply.status_code == 302 and reply.location.startswith("/login?next=")
    assert client.get("/static/pages.css").status_code == 200  # public: the login page's style
    wrong = client.post("/login", data={"token": "nope", "next": "/graph"})
    assert wrong.status_code == 401 and "That is not the token" in wrong.get_data(as_text=True)
    ok = client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert ok.status_code == 302 and ok.location == "/"  # never another site
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/", query_string=E.WINDOW).status_code == 200
    # The cookie opens the pages only: the API still wants its bearer token.
    assert client.get("/api/graph", query_string=E.WINDOW).status_code == 401


def test_grafana_link_when_a_grafana_url_is_set(store):
    app = create_app({"STORE": store, "GRAFANA_URL": "http://grafana.example:3000/"})
    body = app.test_client().get("/graph", query_string={**E.WINDOW, "focus": PAYLOAD})
    links = re.findall(r'class="grafana" href="([^"]*)"', body.get_data(as_text=True))
    (link,) = links
    url = urllib.parse.urlparse(link.replace("&amp;", "&"))
    assert url.netloc == "grafana.example:3000"
    assert url.path == "/d/groundtruth-investigation/groundtruth-incident-investigation"
    args = urllib.parse.parse_qs(url.query)
    assert args["var-focus"] == [PAYLOAD] and args["from"] == [E.WINDOW["from"]]
    without = create_app({"STORE": store}).test_client().get("/graph", query_string=E.WINDOW)
    assert 'class="grafana"' not in without.get_data(as_text=True)


# ---- in a browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(chdb_dir):
    """graphapi over HTTP (waitress) on chDB: the browser's pages are the same on both stores."""
    with database_with(events(), "chdb", None, chdb_dir) as store:
        server = make_server(app_with_alert(store), "127.0.0.1", 0)
        threading.Thread(target=server.run, daemon=True).start()
        yield f"http://127.0.0.1:{server.effective_port}"
        server.close()


def utc_time(text: str) -> datetime:
    """An RFC 3339 UTC time (``...Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_pages_in_a_browser_behind_a_token(served, tmp_path_factory, tmp_path):
    window = urllib.parse.urlencode(E.WINDOW)
    with chromium(tmp_path_factory.mktemp("chromium-profile"), "Europe/Berlin") as browser:
        page = browser.new_page()
        recorder = Recorder(page)
        page.goto(f"{served}/?{window}")
        assert "/login" in page.url  # the token first
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert "Europe/Berlin" in page.inner_text("header .zone")
        assert page.locator("table.hosts").inner_text().count("host-") == 2
        shot(page, tmp_path, "overview")

        page.click("table.traces a >> nth=0")  # the trace's graph
        page.wait_for_load_state()
        payload = page.locator(f'section[data-node="{PAYLOAD}"]')
        assert payload.locator("code.argv").inner_text() == " ".join(HOSTILE)
        shot(page, tmp_path, "graph-trace")

        page.goto(f"{served}/graph?{window}&focus={urllib.parse.quote(E.key(E.A, 101))}")
        anchor = page.locator(f'section[data-node="{E.key(E.B, 200)}"]').get_attribute("id")
        page.click(f"svg g#n{anchor[5:]} a")  # nginx on the other host
        assert page.locator(f"section#{anchor}").is_visible()
        shot(page, tmp_path, "graph")
        page.locator(f"section#{anchor} a.refocus").click()
        page.wait_for_load_state()
        assert E.key(E.B, 200) in page.inner_text("h1")

        page.goto(f"{served}/?{window}")
        page.click("a.alert-link")
        page.wait_for_load_state()
        assert page.locator(f'section[data-node="alert={FINGERPRINT}"]').is_visible()
        shot(page, tmp_path, "alert-graph")

        # An alert notification's link without Grafana (host-b's crash loop, received).
        page.goto(f"{served}/alert?alertname=GroundtruthProcessCrashLoop&instance={E.B}")
        assert page.locator(f'section[data-node="alert={FINGERPRINT}"]').is_visible()

        # The window form in the browser's zone: from/to shown in Berlin's time, the zone
        # stated beside them, and what is typed there sent as UTC.
        page.goto(f"{served}/graph?{window}")
        berlin = ZoneInfo("Europe/Berlin")
        start, end = (
            datetime.fromtimestamp(int(E.WINDOW[k]) / 1000, berlin) for k in ("from", "to")
        )
        shown = page.input_value("form.window input.local-from")
        assert datetime.fromisoformat(shown) == start.replace(tzinfo=None)
        hours = datetime.now(berlin).utcoffset() // timedelta(hours=1)  # +1 or +2 (summer)
        stated = page.inner_text("form.window .window-zone")
        assert f"Europe/Berlin (UTC+{hours:02d}:00)" in stated, stated
        typed = start + timedelta(minutes=5)
        page.fill("form.window input.local-from", typed.strftime("%Y-%m-%dT%H:%M:%S"))
        page.click("form.window button[type=submit]")
        page.wait_for_load_state()
        sent = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
        assert sent["from"][0].endswith("Z") and sent["to"][0].endswith("Z"), sent
        assert utc_time(sent["from"][0]) == typed and utc_time(sent["to"][0]) == end
        assert datetime.fromisoformat(page.input_value("form.window input.local-from")) == (
            typed.replace(tzinfo=None)
        )

        page.goto(f"{served}/process/{urllib.parse.quote(PAYLOAD)}?{window}")
        assert page.evaluate("window.__pwned") is None
        shot(page, tmp_path, "process")
        page.goto(f"{served}/timeline?{window}&host={E.A}")
        shot(page, tmp_path, "timeline")
        page.goto(f"{served}/?host=host-a&last=15m")
        assert "No events in this window" in page.inner_text(".empty")
        shot(page, tmp_path, "empty")
        recorder.check(served)


def test_alert_links_without_grafana_open_the_alerts_graph(client):
    """With no Grafana URL, an alert's dashboard_url is graphapi's /alert with the alert's name
    and labels, as promtool renders it (tests/test_alerts.py: the generated cases' URLs and
    ODD_LINK). Before the alert is received it shows its host's graph and says so; once
    received, it opens the graph focused on that alert, not on another of the same name."""
    from alerts.promtool_tests import CASES, dashboard_link
    from alerts.rules import alerts
    from mixin.config import MixinConfig, load_config
    from tests.test_alerts import ODD_INSTANCE, ODD_LINK

    cfg = MixinConfig({**load_config().raw, "grafana_url": ""})
    down = next(a for a in alerts(cfg) if a.name == "ExporterDown")
    case = next(c for c in CASES if c.alert == "ExporterDown" and c.labels is not None)
    on_a = replace(case, labels={**case.labels, "instance": E.A})
    links = {E.A: dashboard_link(cfg, on_a, down), ODD_INSTANCE: ODD_LINK}

    def follow(url: str):
        target = urllib.parse.urlparse(url)
        assert target.path == "/alert", url
        return client.get(f"{target.path}?{target.query}")

    before = follow(links[E.A])
    body = before.get_data(as_text=True)
    assert before.status_code == 200, body[-2000:]
    note = f"The alert GroundtruthExporterDown was not received (yet): showing the graph of {E.A}"
    assert note in body
    assert f'data-node="{E.key(E.A, 101)}"' in body  # host-a's processes, in the last hour's graph
    # The same alert on another host is received last; each link finds its own.
    fingerprints = {E.A: "down-a-0001", ODD_INSTANCE: "down-odd-01", E.B: "down-b-0001"}
    for host, fingerprint in fingerprints.items():
        labels = {"alertname": "GroundtruthExporterDown", "instance": host,
                  "job": "groundtruth", "severity": "critical"}  # fmt: skip
        payload = E.alert_payload(fingerprint, host, labels)
        reply = client.post("/api/alerts/webhook", json=payload, headers=AUTH)
        assert reply.status_code == 200 and reply.get_json()["stored"] == 1
    for host, url in links.items():
        reply = follow(url)
        assert reply.status_code == 302, reply.get_data(as_text=True)[-2000:]
        graph = urllib.parse.urlparse(reply.headers["Location"])
        args = dict(urllib.parse.parse_qsl(graph.query))
        assert graph.path == "/graph" and args["focus"] == f"alert={fingerprints[host]}", args
        body = client.get(f"{graph.path}?{graph.query}").get_data(as_text=True)
        focus = re.search(SELECTED_NODE, body)
        assert focus and focus.group(1) == f"alert={fingerprints[host]}", body[-3000:]
    assert "alertname is required" in page(client, "/alert", 400)
