"""The investigation pages in a real browser (Debian's chromium, driven by Playwright) against
``groundtruth up`` on events the test itself caused.

The test runs a three-generation chain (a shell script, which runs a second one, which runs a
copy of ``echo`` from the test's temporary directory, flagged as an exec from /tmp) whose last
argv is hostile (a ``<script>``, an ``<img onerror>``, quotes, unicode), and posts one alert
for its host to the webhook. Then, in the browser: the overview lists the host, the trace and
the alert; the graph shows the chain with the exact argv; clicking a node and "Focus the graph
here" re-focuses; the alert's link (the overview's, and a notification's /alert) opens the
alert's graph; the hostile argv is shown literally and runs nothing; times are shown in the
browser's time zone, which is stated; an empty window says so and offers a wider one. Every
request the browser makes goes to graphapi itself. Screenshots of each page are written under
the test's temporary directory (docs/screenshots/ holds the set of tests/test_graphapi_pages.py,
on recorded events: these show this machine).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser import Recorder, chromium
from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.service import free_port

HOST = "pages-host"
ZONE, ZONE_OFFSET = "Asia/Tokyo", timedelta(hours=9)  # not the machine's UTC
HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    'it\'s "quoted" & &lt;kept&gt;',
    "ünïcødé ✓ 日本",
]
WAIT_SECONDS = 90  # turns a hang into a failure; every wait ends on the thing it reads


def api(base: str, path: str, **args):
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(args)}" if args else "")
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


class Up:
    """A running ``groundtruth up``: graphapi's URL, and what it said (its stderr, in a file:
    a pipe nobody reads would stop it once full)."""

    def __init__(self, url: str, proc: subprocess.Popen, log):
        self.url, self.proc, self.log = url, proc, log

    def said(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return f"up is {state}; its stderr ends:\n{self.log.read_text()[-3000:]}"


def wait_for(what: str, probe, up: Up):
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, (
            f"{what}: not served by graphapi in {WAIT_SECONDS} s. {up.said()}"
        )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def up(ebpf_problems, tmp_path_factory):
    """``groundtruth up`` on its own chDB directory, host name HOST."""
    skip_or_fail_without_ebpf(ebpf_problems)
    tmp = tmp_path_factory.mktemp("pages-up")
    graph_port = free_port()
    log = tmp / "up.stderr"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "groundtruth.cli", "up", "--data-dir", str(tmp / "chdb"),
             "--listen", f"127.0.0.1:{free_port()}", "--graphapi-listen", f"127.0.0.1:{graph_port}",
             "--host", HOST],
            stderr=stderr, text=True,
        )  # fmt: skip
    running = Up(f"http://127.0.0.1:{graph_port}", proc, log)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while "Ctrl-C" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (
                f"up did not start. {running.said()}"
            )
            time.sleep(0.1)
        assert f"{running.url}/ " in log.read_text(), running.said()  # the page comes first
        yield running
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        finally:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack(up) -> str:
    """graphapi's URL."""
    return up.url


# The chain fixture runs a copy of echo from its temporary directory (exec_from_tmp, on purpose),
# in whichever of its tests runs first.
RUNS_THE_CHAIN = pytest.mark.causes_flags("exec_from_tmp")


@pytest.fixture(scope="module")
def chain(stack, up, tmp_path_factory):
    """Runs gen1.sh -> gen2.sh -> ./echo HOSTILE...; returns each generation's pid, argv and
    process key (as graphapi serves it), once all three have exited and the flag is stored."""
    tmp = tmp_path_factory.mktemp("pages-chain")
    token = f"pages-{uuid.uuid4().hex[:8]}"
    echo = tmp / "echo"
    shutil.copy("/bin/echo", echo)  # run from the temporary directory: exec_from_tmp
    argv3 = [str(echo), *HOSTILE, token]
    gen2 = tmp / "gen2.sh"
    # gen3 runs in the background so that the shell forks it (never exec's it) and says its pid.
    gen2.write_text(f'echo "gen2 $$"\n{shlex.join(argv3)} &\necho "gen3 $!"\nwait\n')
    gen1 = tmp / "gen1.sh"
    gen1.write_text(f"{shlex.join(['/bin/sh', str(gen2), token])}\ntrue\n")
    since_ms = time.time_ns() // 10**6 - 1000
    run = subprocess.run(
        ["/bin/sh", str(gen1), token], capture_output=True, text=True, timeout=30, cwd=tmp
    )
    assert run.returncode == 0, run.stderr
    said = dict(line.split(" ", 1) for line in run.stdout.splitlines() if line[:4] == "gen2")
    said |= dict(line.split(" ", 1) for line in run.stdout.splitlines() if line[:4] == "gen3")
    assert run.stdout.count(HOSTILE[-1]) == 1  # the hostile argv ran, once, as echo's output
    argvs = {
        "gen1": ["/bin/sh", str(gen1), token],
        "gen2": ["/bin/sh", str(gen2), token],
        "gen3": argv3,
    }
    pids = {"gen2": int(said["gen2"]), "gen3": int(said["gen3"])}

    def listed():
        rows = api(stack, "/api/processes", host=HOST, limit=1500, **{"from": since_ms})
        mine = {r["pid"]: r for r in rows if r["command_line"].endswith(token) and r["end"] != ""}
        return mine if len(mine) == 3 else None

    rows = wait_for("the chain's three processes and their exits", listed, up)
    (pids["gen1"],) = set(rows) - set(pids.values())
    out = {}
    for gen, argv in argvs.items():
        row = rows[pids[gen]]
        assert row["command_line"] == " ".join(argv)
        out[gen] = {"pid": pids[gen], "argv": argv, "key": row["process_key"]}
    assert rows[pids["gen2"]]["parent_key"] == out["gen1"]["key"]
    assert rows[pids["gen3"]]["parent_key"] == out["gen2"]["key"]
    key3 = out["gen3"]["key"]
    wait_for(
        "the exec_from_tmp flag of gen3",
        lambda: any(
            f["rule_id"] == "exec_from_tmp"
            for f in api(stack, f"/api/processes/{urllib.parse.quote(key3)}")["flags"]
        ),
        up,
    )
    return out


@pytest.fixture(scope="module")
def alert(stack):
    """One firing alert on HOST, delivered to the webhook as Alertmanager delivers it."""
    fingerprint = uuid.uuid4().hex[:16]
    starts = datetime.now(UTC) - timedelta(minutes=2)
    payload = {
        "version": "4", "receiver": "graphapi", "status": "firing",
        "alerts": [{
            "status": "firing", "fingerprint": fingerprint,
            "labels": {"alertname": "GroundtruthPagesTest", "instance": HOST,
                       "severity": "warning"},
            "annotations": {"summary": "an alert the pages test sent"},
            "startsAt": starts.isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
        }],
    }  # fmt: skip
    request = urllib.request.Request(
        f"{stack}/api/alerts/webhook",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        assert json.loads(r.read())["stored"] == 1
    return {"fingerprint": fingerprint, "name": "GroundtruthPagesTest"}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium-profile"), ZONE) as context:
        yield context


@pytest.fixture
def page(browser, stack):
    page = browser.new_page()
    recorder = Recorder(page)
    yield page, recorder
    page.close()
    recorder.check(stack)


def detail(page, term: str) -> str:
    """The process page's value of one of its terms (Executable, Working directory, ...)."""
    return page.locator(f'dl.process dt:text-is("{term}") + dd').inner_text()


def shot(page, tmp_path, name: str) -> None:
    """Under the test's directory only: these pages show this machine's own processes."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def node_sections(page) -> dict[str, str]:
    """{node id: details anchor} of the graph page."""
    return page.eval_on_selector_all(
        "section.node-details", "els => Object.fromEntries(els.map(e => [e.dataset.node, e.id]))"
    )


def svg_edges(page) -> set[tuple[str, str]]:
    """(source, target) node ids of the drawn edges (graphviz titles them ``source->target``)."""
    titles = page.eval_on_selector_all(
        ".picture svg g.edge > title", "els => els.map(e => e.textContent)"
    )
    return {tuple(t.split("->", 1)) for t in titles}


@RUNS_THE_CHAIN
def test_overview_lists_the_host_the_trace_and_the_alert(page, stack, chain, alert, tmp_path):
    page, _ = page
    page.goto(stack + "/")
    hosts = page.locator("table.hosts tbody tr td:first-child").all_inner_texts()
    assert HOST in hosts
    assert f"{ZONE} (UTC+09:00)" in page.inner_text("header .zone")
    assert page.locator("table.traces").inner_text().count("exec_from_tmp") >= 1
    assert alert["name"] in page.locator("table.alerts").inner_text()
    # A time is the UTC instant of datetime=, shown in the browser's zone.
    first = page.locator("time[datetime]").first
    utc = datetime.fromisoformat(first.get_attribute("datetime").replace("Z", "+00:00"))
    local = (utc + ZONE_OFFSET).strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"
    assert first.inner_text() == local
    shot(page, tmp_path, "overview")


@RUNS_THE_CHAIN
def test_graph_shows_the_chain_with_exact_argv_and_runs_nothing(page, stack, chain, tmp_path):
    page, recorder = page
    page.goto(f"{stack}/graph?" + urllib.parse.urlencode({"focus": chain["gen3"]["key"]}))
    anchors = node_sections(page)
    for gen in ("gen1", "gen2", "gen3"):
        section = page.locator(f"section#{anchors[chain[gen]['key']]}")
        assert section.locator("code.argv").text_content() == " ".join(chain[gen]["argv"])
    key = {gen: chain[gen]["key"] for gen in chain}
    assert {(key["gen1"], key["gen2"]), (key["gen2"], key["gen3"])} <= svg_edges(page)
    a = {gen: anchors[key[gen]] for gen in chain}
    # The focus's details are shown without a click; the hostile argv is text, not markup.
    gen3 = page.locator(f"section#{a['gen3']}")
    assert gen3.is_visible()
    assert gen3.locator("code.argv").inner_text() == " ".join(chain["gen3"]["argv"])
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.scripts.length") == 1  # pages.js, nothing else
    assert page.locator("img").count() == 0
    # In the drawing: the argv as the node's tooltip (its label shows the first 60 characters).
    tooltip = page.locator(f".picture svg g#n{a['gen3'][5:]} a").get_attribute("xlink:title")
    assert tooltip == " ".join(chain["gen3"]["argv"])  # "&lt;kept&gt;" too, as typed
    shot(page, tmp_path, "graph")

    # Clicking a node shows its details; "Focus the graph here" re-focuses on it.
    page.click(f".picture svg g#n{a['gen2'][5:]} a")
    gen2 = page.locator(f"section#{a['gen2']}")
    assert gen2.is_visible() and not gen3.is_visible()
    gen2.locator("a.refocus").click()
    page.wait_for_load_state()
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["focus"] == [
        chain["gen2"]["key"]
    ]
    assert chain["gen2"]["key"] in page.inner_text("h1")
    anchors = node_sections(page)
    assert page.locator(f"section#{anchors[chain['gen2']['key']]}").is_visible()
    assert recorder.problems == []
    shot(page, tmp_path, "graph-refocused")


@RUNS_THE_CHAIN
def test_the_alert_link_opens_the_alerts_graph(page, stack, chain, alert, tmp_path):
    page, _ = page
    page.goto(stack + "/")
    page.locator("a.alert-link", has_text=alert["name"]).click()
    page.wait_for_load_state()
    focus = f"alert={alert['fingerprint']}"
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["focus"] == [focus]
    anchors = node_sections(page)
    shown = page.locator(f"section#{anchors[focus]}")
    assert shown.is_visible() and alert["name"] in shown.inner_text()
    # The alert fired on the host, which runs the chain's processes.
    assert f"host={HOST}" in anchors
    shot(page, tmp_path, "alert-graph")
    # A notification's link without Grafana names the alert by its name and labels (/alert).
    page.goto(
        f"{stack}/alert?" + urllib.parse.urlencode({"alertname": alert["name"], "instance": HOST})
    )
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["focus"] == [focus]
    assert page.locator(f"section#{node_sections(page)[focus]}").is_visible()


@RUNS_THE_CHAIN
def test_process_page_and_host_timeline(page, stack, chain, tmp_path):
    page, _ = page
    key3 = chain["gen3"]["key"]
    page.goto(f"{stack}/process/{urllib.parse.quote(key3)}")
    ancestry = page.locator("ol.ancestry li").all_inner_texts()
    pids = [f"pid {chain[g]['pid']}" for g in ("gen1", "gen2", "gen3")]
    assert [next(i for i, line in enumerate(ancestry) if p in line) for p in pids] == [
        len(ancestry) - 3, len(ancestry) - 2, len(ancestry) - 1,
    ]  # fmt: skip
    assert page.locator("dl.process code.argv").inner_text() == " ".join(chain["gen3"]["argv"])
    echo = chain["gen3"]["argv"][0]  # a copy of echo, run in the chain's directory
    assert detail(page, "Executable") == os.path.realpath(echo)
    assert detail(page, "Working directory") == os.path.dirname(os.path.realpath(echo))
    assert "exec_from_tmp" in page.locator("ul.flags").inner_text()
    shot(page, tmp_path, "process")

    page.goto(f"{stack}/timeline?" + urllib.parse.urlencode({"host": HOST, "program": "echo"}))
    details = page.locator("table.timeline code.argv").all_text_contents()
    assert shlex.join(chain["gen3"]["argv"]) in details  # as `groundtruth timeline` shows it
    assert all(chain["gen1"]["argv"][1] not in d for d in details)  # filtered: echo only
    assert page.evaluate("window.__pwned") is None
    shot(page, tmp_path, "timeline")


def test_an_empty_window_says_so_and_offers_a_wider_one(page, stack, tmp_path):
    page, _ = page
    page.goto(f"{stack}/?host=no-such-host&last=15m")
    assert "No events in this window" in page.inner_text(".empty")
    page.click("a.wider")
    page.wait_for_load_state()
    assert "last=1h" in page.url and "host=no-such-host" in page.url
    shot(page, tmp_path, "empty")
