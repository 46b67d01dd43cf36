"""Run every bench/bench_*.py module's ``run()`` and write bench/RESULTS.md.

Usage: python -m bench [NAME ...]   (NAME: a module without the bench_ prefix)
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = "unknown cpu"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    kernel = platform.release()
    return f"{platform.node()}: {os.cpu_count()} x {cpu}, {mem_gib:.0f} GiB, kernel {kernel}"


def fmt(x) -> str:
    if x is None:
        return ""
    return f"{x:,.3g}" if isinstance(x, float) and abs(x) < 100 else f"{x:,.0f}"


def table(results) -> list[str]:
    lines = [
        "| figure | value | peer / floor (same run) | ratio | goal | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        peer = f"{r.peer}: {fmt(r.peer_value)} {r.unit}" if r.peer else ""
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        note = f" ({r.note})" if r.note else ""
        lines.append(
            f"| {r.figure}{note} | {fmt(r.value)} {r.unit} | {peer} | {ratio} | {r.goal} | {met} |"
        )
    return lines


HEADER = """# Benchmark results

Written by `make bench` (`python -m bench [NAME ...]` reruns some and keeps the others'
sections). Each section says when and on what machine it ran: figures are compared only with
their peer or floor measured in the same run, since this machine is shared and its load varies.
"""


def read_sections(path: Path) -> dict[str, str]:
    """{bench name: its section} from an existing RESULTS.md."""
    sections = {}
    if path.exists():
        for chunk in ("\n" + path.read_text()).split("\n## ")[1:]:
            name, _, body = chunk.partition("\n")
            sections[name.strip()] = f"## {name.strip()}\n{body.rstrip()}\n"
    return sections


def section(name: str, module, results, seconds: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"## {name}", "", (module.__doc__ or "").strip(), ""]
    lines += [f"Run {when} on {machine()}, in {seconds:.0f} s.", ""]
    lines += table(results)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    results_file = HERE / "RESULTS.md"
    sections = read_sections(results_file)
    failed = False
    for name in names:
        print(f"bench: {name} ...", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.monotonic()
        try:
            results = module.run()
        except Exception as e:  # noqa: BLE001 - one broken bench must not hide the others
            failed = True
            sections[name] = f"## {name}\n\nFAILED: {e!r}\n"
            print(f"bench: {name} failed: {e!r}", file=sys.stderr)
            continue
        sections[name] = section(name, module, results, time.monotonic() - started)
        for line in table(results)[2:]:
            print("  " + line)
    body = "\n".join(sections[n] for n in sorted(sections))
    results_file.write_text(HEADER + "\n" + body)
    print(f"bench: wrote {results_file}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
