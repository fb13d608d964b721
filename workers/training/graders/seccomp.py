"""Seccomp filters for the grader sandbox, as classic BPF programs written out here.

Hand-written rather than through libseccomp: the filters are two short deny lists, the program is the
raw `struct sock_filter` array that both `bwrap --seccomp FD` and `prctl(PR_SET_SECCOMP)` take, and the
sandbox's harness runs under `python -I -S` where no third-party binding can be imported anyway. Each
program checks the architecture first (x86_64 and aarch64; any other ABI, i386 and x32 included, kills
the process), then refuses the listed system calls with EPERM.

- `BASE` (installed by bwrap for everything in the sandbox): mounts, namespaces, tracing and reading
  other processes' memory, keyrings, BPF, perf, kernel modules, reboot/kexec, swap, clocks, raw I/O
  ports, io_uring (it bypasses seccomp for its own operations) and the mount API.
- `NO_SPAWN` (installed by the harness in the grader's own process, after its trusted parent forked it):
  process creation: fork, vfork, clone without CLONE_THREAD (threads stay allowed), clone3 (ENOSYS, so
  the C library falls back to clone, where the flags can be read), execve and execveat.
"""

from __future__ import annotations

import platform
import struct

# Linux's numbers for each architecture: arch/x86/entry/syscalls/syscall_64.tbl and the generic table
# (include/uapi/asm-generic/unistd.h) that aarch64 uses. None: the call does not exist there.
_SYSCALLS: dict[str, tuple[int | None, int | None]] = {
    # name: (x86_64, aarch64)
    "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41), "chroot": (161, 51),
    "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430), "fsconfig": (431, 431),
    "fsmount": (432, 432), "fspick": (433, 433), "mount_setattr": (442, 442),
    "unshare": (272, 97), "setns": (308, 268),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kcmp": (312, 272), "pidfd_getfd": (438, 438),
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "reboot": (169, 142), "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "create_module": (174, None), "get_kernel_syms": (177, None), "query_module": (178, None),
    "swapon": (167, 224), "swapoff": (168, 225), "acct": (163, 89), "quotactl": (179, 60),
    "quotactl_fd": (443, 443), "nfsservctl": (180, None), "uselib": (134, None), "_sysctl": (156, None),
    "syslog": (103, 116), "vhangup": (153, 58), "lookup_dcookie": (212, 18),
    "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264), "fanotify_init": (300, 262),
    "settimeofday": (164, 170), "clock_settime": (227, 112), "clock_adjtime": (305, 266),
    "adjtimex": (159, 171), "sethostname": (170, 161), "setdomainname": (171, 162),
    "iopl": (172, None), "ioperm": (173, None),
    # process creation (NO_SPAWN only)
    "fork": (57, None), "vfork": (58, None), "clone": (56, 220), "clone3": (435, 435),
    "execve": (59, 221), "execveat": (322, 281),
}  # fmt: skip
BASE_DENIED = tuple(
    n for n in _SYSCALLS if n not in ("fork", "vfork", "clone", "clone3", "execve", "execveat")
)
SPAWN_DENIED = ("fork", "vfork", "execve", "execveat")

_ARCH = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}  # AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64
_X32_SYSCALL_BIT = 0x40000000
_CLONE_THREAD = 0x00010000

# BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_EPERM, _ENOSYS = 1, 38
_NR, _ARCH_OFFSET, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (arg0's low 32 bits, little-endian)


class UnsupportedArchitecture(RuntimeError):
    pass


def _machine(machine: str | None = None) -> str:
    machine = (machine or platform.machine()).lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if machine not in _ARCH:
        raise UnsupportedArchitecture(
            f"no seccomp filter for the {machine} architecture (x86_64 and aarch64 only)"
        )
    return machine


def _program(denied: tuple[str, ...], *, threads_only: bool, machine: str | None) -> bytes:
    machine = _machine(machine)
    column, audit_arch = _ARCH[machine]
    numbers = [nr for nr in (_SYSCALLS[name][column] for name in denied) if nr is not None]
    code: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH_OFFSET),
        (_JEQ, 1, 0, audit_arch),
        (_RET, 0, 0, _KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if machine == "x86_64":  # the x32 ABI shares the architecture value; its numbers carry this bit
        code += [(_JGE, 0, 1, _X32_SYSCALL_BIT), (_RET, 0, 0, _KILL_PROCESS)]
    if threads_only:
        clone, clone3 = _SYSCALLS["clone"][column], _SYSCALLS["clone3"][column]
        assert clone is not None and clone3 is not None
        code += [
            (_JEQ, 0, 1, clone3),
            (_RET, 0, 0, _ERRNO | _ENOSYS),  # the C library then falls back to clone(2)
            (_JEQ, 0, 4, clone),
            (_LD_W_ABS, 0, 0, _ARG0),
            (_JSET, 1, 0, _CLONE_THREAD),
            (_RET, 0, 0, _ERRNO | _EPERM),
            (_RET, 0, 0, _ALLOW),
        ]
    # One comparison a number; a match jumps forward to the shared EPERM at the end.
    for i, nr in enumerate(numbers):
        code.append((_JEQ, len(numbers) - i, 0, nr))
    code += [(_RET, 0, 0, _ALLOW), (_RET, 0, 0, _ERRNO | _EPERM)]
    if any(jt > 255 or jf > 255 for _, jt, jf, _ in code):
        raise ValueError("a seccomp jump is longer than BPF allows")
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in code)


def base_filter(machine: str | None = None) -> bytes:
    """For `bwrap --seccomp`: everything in the sandbox (this machine's architecture unless named)."""
    return _program(BASE_DENIED, threads_only=False, machine=machine)


def no_spawn_filter(machine: str | None = None) -> bytes:
    """For the grader's own process: no new processes and no exec, threads allowed."""
    return _program(SPAWN_DENIED, threads_only=True, machine=machine)
