"""The kernel ABI of each probe, checked without root: its header compiled with ``cc`` against
the Python side that decodes it (as tetragon's alignchecker does).

The header's structs are read field by field (nested structs flattened) and the compiled
program prints every field's ``offsetof`` and ``sizeof``; each Python ``struct`` format must have
the struct's size, start and end its items on field boundaries, and unpack every integer field
whole with the field's signedness. Every enum constant or ``#define`` that a Python module of the
probe also names must have the same value there.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from exporter.probes import process_abi as process
from exporter.probes import tcp, tcp_columns

# Every test runs the offsets program it compiled in its tmp_path: an exec from /tmp.
pytestmark = pytest.mark.causes_flags("exec_from_tmp")

BPF = Path(__file__).resolve().parent.parent / "exporter" / "bpf"
INT_TYPES = "\n".join(
    f"typedef {'u' if sign == 'u' else ''}int{bits}_t {sign}{bits};"
    for sign in "us"
    for bits in (8, 16, 32, 64)
)

# header -> (Python modules that mirror its constants, {struct: [Python formats of it]},
#            {(struct, field): the offset Python reads it at}, {name: value} checked besides,
#            {struct, or (struct, field) where a record ends: the record size Python expects})
PROBES = {
    "process.h": (
        [process],
        {"proc_event": [process.HEAD.format], "exec_context": [process.CONTEXT.format]},
        {
            ("exec_event", "sec.euid"): process.HEAD.size,
            ("exec_event", "cmdline_size"): process.CMDLINE_SIZE_AT,
            ("exec_event", "exe_path_size"): process.CMDLINE_SIZE_AT + 4,
            ("exec_event", "cmdline"): process.CMDLINE_AT,
            ("cred_event", "now.uid"): process.HEAD.size,
            ("cred_event", "syscall"): process.HEAD.size + process.CRED.size - 8,
        },
        {f"SYS_{name.upper()}": value for value, name in process.CRED_SYSCALLS.items()},
        {
            "proc_event": process.RECORD_SIZES[process.EV_FORK],
            "cgroup_event": process.RECORD_SIZES[process.EV_CGROUP_MKDIR],
            "cred_event": process.RECORD_SIZES[process.EV_CRED_CHANGE],
            # An exec record ends where its command line and path do (the longest: the array's
            # end, less the room for one name that is never sent).
            ("exec_event", "cmdline"): process.EXEC_RECORD_MAX + process.NAME_LEN,
        },
    ),
    "tcp.h": (
        [tcp],
        {"tcp_event": [tcp.EVENT.format, tcp.EVENT_DECODED.format]},
        {("tcp_event", "owner.comm"): tcp.COMM_AT},
        {
            "DURATION_BUCKETS": len(tcp.DURATION_BOUNDS_S),
            **{f"O_{name.upper()}": value for value, name in tcp.OUTCOMES.items()},
        },
        {"tcp_event": tcp.EVENT.size},
    ),
}


def without_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def struct_fields(text: str) -> dict[str, list[tuple[str, str]]]:
    """{struct: [(type, name)]} of every struct defined in a header (arrays keep their name)."""
    structs = {}
    for name, body in re.findall(r"struct\s+(\w+)\s*\{(.*?)\};", text, flags=re.S):
        fields = []
        for decl in filter(None, (d.strip() for d in body.split(";"))):
            m = re.fullmatch(r"((?:struct\s+)?\w+)\s+(\w+)\s*(\[[^\]]+\])?", decl)
            assert m, f"struct {name}: cannot read {decl!r}"
            fields.append((m.group(1), m.group(2)))
        structs[name] = fields
    return structs


def leaves(structs: dict, name: str, prefix: str = "") -> list[tuple[str, str]]:
    """(C type, member designator) of every field, nested structs flattened."""
    out = []
    for ctype, field in structs[name]:
        if ctype.startswith("struct "):
            out += leaves(structs, ctype.split()[1], f"{prefix}{field}.")
        else:
            out.append((ctype, prefix + field))
    return out


def constant_names(text: str) -> set[str]:
    names = set()
    for body in re.findall(r"enum\s+\w+\s*\{(.*?)\};", text, flags=re.S):
        names |= set(re.findall(r"(\w+)\s*=", body))
    names |= set(re.findall(r"^#define\s+(\w+)[ \t]+\S", text, flags=re.M))
    return names


def compiled_layout(header: str, tmp_path: Path, structs: dict, constants: set[str]) -> dict:
    """What the compiler says: {("sizeof", s): n, ("field", s, f): (offset, size), name: value}."""
    lines = []
    for s in structs:
        lines.append(f'printf("sizeof {s} %zu\\n", sizeof(struct {s}));')
        for _ctype, f in leaves(structs, s):
            lines.append(
                f'printf("field {s} {f} %zu %zu\\n", offsetof(struct {s}, {f}), '
                f"sizeof(((struct {s} *)0)->{f}));"
            )
    for c in sorted(constants):
        lines.append(f'printf("const {c} %lld\\n", (long long)({c}));')
    source = (
        "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n"
        f'{INT_TYPES}\n#include "{header}"\nint main(void) {{\n'
        + "\n".join(lines)
        + "\nreturn 0;\n}\n"
    )
    (tmp_path / "abi.c").write_text(source)
    subprocess.run(
        ["cc", f"-I{BPF}", "-o", str(tmp_path / "abi"), str(tmp_path / "abi.c")], check=True
    )
    out = subprocess.run([str(tmp_path / "abi")], capture_output=True, text=True, check=True)
    layout = {}
    for line in out.stdout.splitlines():
        kind, *rest = line.split()
        if kind == "sizeof":
            layout[("sizeof", rest[0])] = int(rest[1])
        elif kind == "field":
            layout[("field", rest[0], rest[1])] = (int(rest[2]), int(rest[3]))
        else:
            layout[rest[0]] = int(rest[1])
    return layout


def format_items(fmt: str) -> list[tuple[int, int, str]]:
    """(offset, size, code) of every item a little-endian struct format unpacks (pads skipped)."""
    items, offset = [], 0
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", fmt.lstrip("<")):
        n = int(count or 1)
        if code == "x":
            offset += n
        elif code == "s":
            items.append((offset, n, code))
            offset += n
        else:
            size = struct.calcsize("<" + code)
            for _ in range(n):
                items.append((offset, size, code))
                offset += size
    return items


def python_constants(modules, constants: set[str]) -> dict[str, int]:
    return {
        name: getattr(m, name)
        for m in modules
        for name in constants
        if isinstance(getattr(m, name, None), int)
    }


@pytest.fixture(params=sorted(PROBES))
def probe_abi(request, tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (make setup installs one with the kernel headers)")
    header = request.param
    text = without_comments((BPF / header).read_text())
    structs, constants = struct_fields(text), constant_names(text)
    modules, formats, offsets, extra, sizes = PROBES[header]
    named = python_constants(modules, constants)
    compiled = compiled_layout(header, tmp_path, structs, set(named) | set(extra))
    return structs, compiled, formats, offsets, {**named, **extra}, sizes


def elements(ctype: str, offset: int, size: int) -> list[tuple[tuple[int, int], str]]:
    """((offset, size), C type) of a field, or of each element of an integer array field (a
    ``u32 x[3]`` unpacks as three ``I``)."""
    m = re.fullmatch(r"[us](8|16|32|64)", ctype)
    width = int(m.group(1)) // 8 if m else size
    return [((offset + i, width), ctype) for i in range(0, size, width)]


def test_python_formats_match_the_compiled_structs(probe_abi):
    structs, compiled, formats, offsets, _, _ = probe_abi
    for name, fmts in formats.items():
        fields = dict(
            element
            for ctype, f in leaves(structs, name)
            for element in elements(ctype, *compiled[("field", name, f)])
        )  # (offset, size) -> C type; an integer array's elements each count as a field
        starts = {off for off, _ in fields}
        ends = {off + size for off, size in fields}
        for fmt in fmts:
            assert struct.calcsize(fmt) == compiled[("sizeof", name)], (name, fmt)
            for offset, size, code in format_items(fmt):
                assert offset in starts and offset + size in ends, (name, fmt, offset)
                if code != "s":  # an integer: exactly one field, of its signedness
                    ctype = fields.get((offset, size))
                    assert ctype is not None, (name, fmt, offset, "not one whole field")
                    assert ctype.startswith("s") == code.islower(), (name, fmt, offset, ctype)
    for (name, field), python_offset in offsets.items():
        assert compiled[("field", name, field)][0] == python_offset, (name, field)


def test_python_record_sizes_match_the_compiled_structs(probe_abi):
    """The sizes the decoders check every record against (a misfit is a counted decode drop)."""
    _, compiled, _, _, _, sizes = probe_abi
    assert sizes
    compiled_sizes = {
        name: sum(compiled[("field", *name)])
        if isinstance(name, tuple)
        else compiled[("sizeof", name)]
        for name in sizes
    }
    assert compiled_sizes == sizes


def test_python_constants_match_the_header(probe_abi):
    _, compiled, _, _, constants, _ = probe_abi
    assert len(constants) >= 10  # the kinds, flags and counter kinds at least
    assert {name: compiled[name] for name in constants} == constants


def test_the_numpy_record_matches_the_compiled_struct(tmp_path):
    """tcp_columns.RECORD, the dtype the hot path reads whole drains with: each field named by
    its C member at the compiler's offset and size, every field there, the struct's size; and
    the address words cover both addresses exactly."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (make setup installs one with the kernel headers)")
    structs = struct_fields(without_comments((BPF / "tcp.h").read_text()))
    compiled = compiled_layout("tcp.h", tmp_path, structs, set())
    record = tcp_columns.RECORD
    assert record.itemsize == compiled[("sizeof", "tcp_event")]
    fields = {f for _, f in leaves(structs, "tcp_event") if not f.endswith("pad")}
    assert set(record.names) == fields
    for name in record.names:
        dtype, offset = record.fields[name][:2]
        assert compiled[("field", "tcp_event", name)] == (offset, dtype.itemsize), name
        kind = "i" if compiled_type(structs, name).startswith("s") else "uSV"
        assert dtype.kind in kind, (name, dtype)
    words = tcp_columns.ADDR_WORDS
    saddr, daddr = (compiled[("field", "tcp_event", f"addrs.{f}")] for f in ("saddr", "daddr"))
    assert [words.fields[w][1] for w in words.names] == list(range(saddr[0], daddr[0] + 16, 8))
    assert daddr[0] == saddr[0] + 16 and words.itemsize == record.itemsize


def compiled_type(structs: dict, designator: str) -> str:
    return dict((f, c) for c, f in leaves(structs, "tcp_event"))[designator]


def test_the_checker_sees_a_misplaced_field(tmp_path):
    """A format one field short of the struct fails the size check: the test can fail."""
    text = "struct e { u64 a; u32 b; s32 c; };"
    structs = struct_fields(text)
    (tmp_path / "e.h").write_text(text)
    compiled = compiled_layout("e.h", tmp_path, structs, set())
    assert compiled[("sizeof", "e")] == 16
    assert struct.calcsize("<QI") != compiled[("sizeof", "e")]
    assert [(o, s) for o, s, _ in format_items("<QIi")] == [
        compiled[("field", "e", f)] for _, f in leaves(structs, "e")
    ]
