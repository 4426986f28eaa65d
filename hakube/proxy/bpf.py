"""Just enough eBPF to load a small tc program and keep a hash map: the ``bpf(2)`` syscall
through ctypes, an instruction encoder, and ``tc`` to attach.

Why not a compiler or a library: the fast path (:mod:`hakube.proxy.fastpath`) is some sixty
instructions; assembling them here keeps clang, libbpf and BTF tooling off every node, and
the kernel's verifier checks the result at load time all the same. x86_64 and arm64 only
(the syscall numbers below).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import struct
import subprocess
import tempfile

_SYSCALL = {"x86_64": 321, "aarch64": 280}
_MAP_CREATE, _MAP_LOOKUP, _MAP_UPDATE, _PROG_LOAD, _OBJ_PIN = 0, 1, 2, 5, 6
MAP_HASH = 1
PROG_SCHED_CLS = 3
PSEUDO_MAP_FD = 1

# Helpers (include/uapi/linux/bpf.h numbering).
MAP_LOOKUP_ELEM, SKB_STORE_BYTES, L3_CSUM_REPLACE, FIB_LOOKUP, REDIRECT_PEER = 1, 9, 10, 69, 155

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class BpfError(OSError):
    """The kernel refused a bpf(2) call (the message carries the verifier's log, if any), or
    ``tc`` refused to attach."""

    def __str__(self) -> str:
        return str(self.strerror)


def ins(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte instruction."""
    return struct.pack("<BBhi", op, (src << 4) | dst, off, imm)


def ld_map_fd(dst: int, fd: int) -> bytes:
    """``dst = map`` (a 16-byte load whose source marks the immediate as a map's fd)."""
    return ins(0x18, dst, PSEUDO_MAP_FD, 0, fd) + ins(0, 0, 0, 0, 0)


def _bpf(
    cmd: int, attr: ctypes.Structure, what: str, log: ctypes.Array[ctypes.c_char] | None = None
) -> int:
    nr = _SYSCALL.get(platform.machine())
    if nr is None:
        raise BpfError(0, f"{what}: unsupported machine {platform.machine()}")
    ret: int = _libc.syscall(nr, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        detail = f": {log.value.decode(errors='replace')[-800:]}" if log is not None else ""
        raise BpfError(err, f"{what}: {os.strerror(err)}{detail}")
    return ret


class _MapAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("_rest", ctypes.c_char * 100),
    ]


class _ElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("_rest", ctypes.c_char * 96),
    ]


class _ProgAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("_rest", ctypes.c_char * 96),
    ]


class _PinAttr(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
        ("_rest", ctypes.c_char * 96),
    ]


class HashMap:
    """A kernel hash map of fixed-size keys to one-byte values, held by this object's fd."""

    def __init__(self, key_size: int, max_entries: int) -> None:
        attr = _MapAttr(map_type=MAP_HASH, key_size=key_size, value_size=1, max_entries=max_entries)
        self.key_size = key_size
        self.max_entries = max_entries
        self.fd = _bpf(_MAP_CREATE, attr, "bpf(MAP_CREATE)")

    def _elem(self, key: bytes, value: ctypes.Array[ctypes.c_char]) -> _ElemAttr:
        assert len(key) == self.key_size
        self._k = ctypes.create_string_buffer(key, len(key))  # alive until the call returns
        return _ElemAttr(
            map_fd=self.fd, key=ctypes.addressof(self._k), value=ctypes.addressof(value)
        )

    def put(self, key: bytes) -> None:
        """Add ``key`` (value 1); BpfError (E2BIG) when the map is full."""
        value = ctypes.create_string_buffer(b"\x01", 1)
        _bpf(_MAP_UPDATE, self._elem(key, value), "bpf(MAP_UPDATE_ELEM)")

    def __contains__(self, key: bytes) -> bool:
        value = ctypes.create_string_buffer(1)
        try:
            _bpf(_MAP_LOOKUP, self._elem(key, value), "bpf(MAP_LOOKUP_ELEM)")
        except BpfError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def load_program(code: bytes, name: str) -> int:
    """Load a tc classifier (``SCHED_CLS``) program; its fd. BpfError with the verifier's log
    if the kernel refuses it."""
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")  # the FIB, checksum and redirect helpers are GPL-only
    log = ctypes.create_string_buffer(1 << 16)
    attr = _ProgAttr(
        prog_type=PROG_SCHED_CLS,
        insn_cnt=len(code) // 8,
        insns=ctypes.addressof(insns),
        license=ctypes.addressof(lic),
        log_level=1,
        log_size=len(log),
        log_buf=ctypes.addressof(log),
        prog_name=name.encode()[:15],
    )
    return _bpf(_PROG_LOAD, attr, "bpf(PROG_LOAD)", log)


def pin(fd: int, path: str) -> None:
    """Pin an object (program or map) at ``path`` inside a bpffs."""
    name = ctypes.create_string_buffer(path.encode())
    _bpf(_OBJ_PIN, _PinAttr(pathname=ctypes.addressof(name), bpf_fd=fd), f"bpf(OBJ_PIN) {path}")


def _tc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tc", *args], capture_output=True, text=True, timeout=30, check=False)


def bpffs_mounts() -> list[str]:
    """Where a bpffs is mounted (usually /sys/fs/bpf, which systemd mounts)."""
    try:
        with open("/proc/self/mounts") as f:
            return [line.split()[1] for line in f if line.split()[2:3] == ["bpf"]]
    except OSError:
        return []


def attach_ingress(device: str, prog_fd: int, pref: int) -> None:
    """Attach a program to ``device``'s tc ingress hook (a ``clsact`` qdisc, added if
    missing), as the direct-action filter with priority ``pref``, replacing the one there --
    so a restarted proxy swaps its program in one step, with no moment without one.

    ``tc`` takes programs by pinned path only: the program is pinned under a unique name in a
    mounted bpffs (or one mounted for the moment in a private directory when there is none),
    attached, and the pin removed (the filter keeps its own reference)."""
    _tc("qdisc", "add", "dev", device, "clsact")  # fails harmlessly when present
    mounts = bpffs_mounts()
    with tempfile.TemporaryDirectory(prefix="hakube-bpf-") as tmp:
        if mounts:
            base = mounts[0]
        else:
            mount = subprocess.run(
                ["mount", "-t", "bpf", "bpf", tmp], capture_output=True, text=True, check=False
            )
            if mount.returncode != 0:
                raise BpfError(0, f"mount -t bpf: {mount.stderr.strip()}")
            base = tmp
        path = os.path.join(base, f"hakube-{os.getpid()}-{os.path.basename(tmp)}")
        try:
            pin(prog_fd, path)
            res = _tc(
                "filter", "replace", "dev", device, "ingress", "pref", str(pref),
                "handle", "1", "bpf", "da", "pinned", path,
            )  # fmt: skip
        finally:
            if os.path.exists(path):
                os.unlink(path)
            if not mounts:
                subprocess.run(["umount", tmp], capture_output=True, check=False)
    if res.returncode != 0:
        raise BpfError(0, f"tc filter replace dev {device}: {res.stderr.strip()}")


def detach_ingress(device: str, pref: int) -> bool:
    """Remove the ingress filter with priority ``pref`` from ``device``; whether one was
    there. The ``clsact`` qdisc stays (other filters may use it)."""
    res = _tc("filter", "del", "dev", device, "ingress", "pref", str(pref))
    return res.returncode == 0


def ingress_prefs(device: str) -> list[int]:
    """Priorities of the ingress filters on ``device`` (none without a clsact qdisc)."""
    out = _tc("filter", "show", "dev", device, "ingress").stdout
    prefs = set()
    for line in out.splitlines():
        words = line.split()
        if "pref" in words:
            prefs.add(int(words[words.index("pref") + 1]))
    return sorted(prefs)
