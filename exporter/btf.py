"""Struct member offsets read from the running kernel's BTF.

The kernel headers installed here do not match the running kernel, so no BPF program may read
a kernel struct through them. Instead the loader asks the kernel's own type information
(``/sys/kernel/btf/vmlinux``) for each offset it needs, through libbpf, and compiles it into
the program as a ``-D`` define.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

BTF_KIND_STRUCT = 4
BTF_KIND_ENUM = 6
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_TYPE_TAG = 18
_MODIFIERS = {
    BTF_KIND_TYPEDEF,
    BTF_KIND_VOLATILE,
    BTF_KIND_CONST,
    BTF_KIND_RESTRICT,
    BTF_KIND_TYPE_TAG,
}


class BtfError(RuntimeError):
    pass


class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size", ctypes.c_uint32)]


class _BtfMember(ctypes.Structure):
    _fields_ = [
        ("name_off", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("offset", ctypes.c_uint32),
    ]


class _BtfEnum(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("val", ctypes.c_int32)]


@cache
def _libbpf():
    lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    lib.btf__load_vmlinux_btf.restype = ctypes.c_void_p
    lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    lib.btf__find_by_name_kind.restype = ctypes.c_int32
    lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__type_by_id.restype = ctypes.POINTER(_BtfType)
    lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__name_by_offset.restype = ctypes.c_char_p
    return lib


@cache
def _vmlinux():
    btf = _libbpf().btf__load_vmlinux_btf()
    if not btf:
        raise BtfError(f"cannot load kernel BTF (errno {ctypes.get_errno()})")
    return btf


def _members(type_id: int):
    """(name, type id, bit offset) of each member of a struct or union."""
    lib, btf = _libbpf(), _vmlinux()
    t = lib.btf__type_by_id(btf, type_id)
    vlen, kind_flag = t.contents.info & 0xFFFF, (t.contents.info >> 31) & 1
    base = ctypes.cast(t, ctypes.c_void_p).value + ctypes.sizeof(_BtfType)
    members = (_BtfMember * vlen).from_address(base)
    for m in members:
        bits = m.offset & 0xFFFFFF if kind_flag else m.offset
        yield lib.btf__name_by_offset(btf, m.name_off).decode(), m.type, bits


def _resolve(type_id: int) -> int:
    """Skip typedefs and qualifiers."""
    lib, btf = _libbpf(), _vmlinux()
    while (lib.btf__type_by_id(btf, type_id).contents.info >> 24) & 0x1F in _MODIFIERS:
        type_id = lib.btf__type_by_id(btf, type_id).contents.size
    return type_id


def _find_member(type_id: int, name: str) -> tuple[int, int] | None:
    """(bit offset, type id) of a member, looking inside anonymous structs and unions."""
    for member, member_type, bits in _members(type_id):
        if member == name:
            return bits, member_type
        if member == "":
            found = _find_member(_resolve(member_type), name)
            if found:
                return bits + found[0], found[1]
    return None


@cache
def member_offset(struct: str, path: str) -> int:
    """Byte offset of ``path`` (``a`` or ``a.b``) in ``struct <struct>`` of the running kernel."""
    lib, btf = _libbpf(), _vmlinux()
    type_id = lib.btf__find_by_name_kind(btf, struct.encode(), BTF_KIND_STRUCT)
    if type_id < 0:
        raise BtfError(f"struct {struct} is not in the kernel's BTF")
    bits = 0
    for name in path.split("."):
        found = _find_member(_resolve(type_id), name)
        if found is None:
            raise BtfError(f"struct {struct} has no member {path!r} in the kernel's BTF")
        bits += found[0]
        type_id = found[1]
    if bits % 8:
        raise BtfError(f"{struct}.{path} is a bitfield")
    return bits // 8


@cache
def enum_value(enum: str, name: str) -> int:
    """Value of enumerator ``name`` of ``enum <enum>`` in the running kernel."""
    lib, btf = _libbpf(), _vmlinux()
    type_id = lib.btf__find_by_name_kind(btf, enum.encode(), BTF_KIND_ENUM)
    if type_id < 0:
        raise BtfError(f"enum {enum} is not in the kernel's BTF")
    t = lib.btf__type_by_id(btf, type_id)
    base = ctypes.cast(t, ctypes.c_void_p).value + ctypes.sizeof(_BtfType)
    for entry in (_BtfEnum * (t.contents.info & 0xFFFF)).from_address(base):
        if lib.btf__name_by_offset(btf, entry.name_off).decode() == name:
            return entry.val
    raise BtfError(f"enum {enum} has no enumerator {name!r} in the kernel's BTF")


def offset_defines(fields: dict[str, tuple[str, str]]) -> list[str]:
    """``-DNAME=offset`` compiler flags for {NAME: (struct, member path)}."""
    return [f"-D{name}={member_offset(struct, path)}" for name, (struct, path) in fields.items()]
