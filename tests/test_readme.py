"""The README keeps up with the code: event tables generated, every metric documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from groundtruth.reference import README, with_tables
from tests.test_import_direction import PRODUCTION

ROOT = Path(__file__).resolve().parent.parent


def readme_metrics() -> set[str]:
    return set(re.findall(r"^\| `(groundtruth_[a-z_]+)` \|", README.read_text(), re.M))


def test_event_tables_and_settings_are_current():
    # (A setting without its meaning fails here too: the table is made from the meanings.)
    text = README.read_text()
    assert text == with_tables(text), (
        "README event tables or settings are stale: python -m groundtruth.reference"
    )


def test_every_exported_metric_is_documented(running_exporter):
    subprocess.run(["/bin/true"])
    exported = {
        name
        for name, _labels in running_exporter.scrape()
        if name.startswith("groundtruth_") and not name.endswith("_created")
    }
    # Histograms expose _bucket/_sum/_count: documented under their family name.
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in exported}
    missing = families - readme_metrics()
    assert not missing, f"metrics missing from README: {sorted(missing)}"


def test_every_documented_metric_exists_in_the_code():
    # Production code only: a metric named in a test or a benchmark is not exported.
    source = "\n".join(
        p.read_text() for package in PRODUCTION for p in (ROOT / package).rglob("*.py")
    )
    for metric in readme_metrics():
        family = re.sub(r"_(total|info)$", "", metric)
        assert f'"{family}"' in source, f"README documents {metric}, which no collector exports"


def test_quick_start_is_two_commands():
    block = README.read_text().split("## Quick start", 1)[1].split("\n\n", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    assert commands == ["make run", "make test"]


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_kind_the_exporter_stores_is_documented():
    """Each table's ``kind`` column names every kind the probes and the start-up scans emit."""
    from exporter.probes import process, tcp
    from schema.events import ConnectionEvent, ListenEvent, ProcessEvent, columns

    listen_kinds = {tcp.KIND_NAMES[tcp.EV_LISTEN], tcp.KIND_NAMES[tcp.EV_LISTEN_CLOSE]}
    emitted = {
        ProcessEvent: set(process.KIND_NAMES.values()) | {"scan"},
        ConnectionEvent: set(tcp.KIND_NAMES.values()) - listen_kinds | {"scan"},
        ListenEvent: listen_kinds | {"scan"},
    }
    for cls, kinds in emitted.items():
        (doc,) = [doc for name, _, doc in columns(cls) if name == "kind"]
        assert kinds <= set(re.findall(r"[a-z_]+", doc)), (cls.__name__, doc)
