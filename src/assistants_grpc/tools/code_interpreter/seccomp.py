"""The sandbox's seccomp filter: a classic BPF program, assembled here, that bwrap loads
(`--seccomp FD`) into the sandboxed process before it executes the kernel.

Hand-assembled rather than built with libseccomp: the program is a few dozen instructions, the
Python bindings on PyPI are an unmaintained ctypes wrapper around a shared library a host may
lack, and a test can read every instruction. What it does, in order:

1. a foreign architecture (an x86_64 process switching to the i386 ABI with `int 0x80`, whose
   syscall numbers differ) is killed;
2. on x86_64, the x32 ABI (syscall numbers with bit 30 set) is refused;
3. the system calls a sandboxed program never needs and that widen the kernel's attack surface
   get EPERM: debugging other processes (ptrace, process_vm_*), mounts and namespaces (mount,
   unshare, setns, pivot_root, the new mount API), keyrings, bpf, perf_event_open, kernel
   modules and kexec, io_uring (a second syscall path seccomp cannot see), userfaultfd, and
   handle-based opens;
4. `clone` with a namespace flag gets EPERM, and `clone3` gets ENOSYS (its flags live in
   memory a filter cannot read, and libc falls back to `clone` on ENOSYS);
5. everything else is allowed.

Unknown architectures get no filter (`program()` returns None) and the launcher says so.
"""

from __future__ import annotations

import errno
import platform
import struct

# Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

# seccomp return values (linux/seccomp.h).
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

# struct seccomp_data offsets: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
_NR = 0
_ARCH = 4
_ARG0_LOW = 16  # little-endian: the low 32 bits of args[0] (clone's flags)

_X32_BIT = 0x40000000
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
# CLONE_NEWNET | CLONE_NEWTIME
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
CLONE_NAMESPACES |= 0x20000000 | 0x40000000 | 0x00000080

DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
)


# (AUDIT_ARCH value, whether the x32 bit must be refused, syscall numbers by name)
_ARCHES: dict[str, tuple[int, bool, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        True,
        {
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "chroot": 161,
            "unshare": 272,
            "setns": 308,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "bpf": 321,
            "perf_event_open": 298,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "reboot": 169,
            "swapon": 167,
            "swapoff": 168,
            "acct": 163,
            "userfaultfd": 323,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "open_by_handle_at": 304,
            "name_to_handle_at": 303,
            "personality": 135,
            "clone": 56,
            "clone3": 435,
        },
    ),
    "aarch64": (
        0xC00000B7,
        False,
        {
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "chroot": 51,
            "unshare": 97,
            "setns": 268,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "bpf": 280,
            "perf_event_open": 241,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "reboot": 142,
            "swapon": 224,
            "swapoff": 225,
            "acct": 89,
            "userfaultfd": 282,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "open_by_handle_at": 265,
            "name_to_handle_at": 264,
            "personality": 92,
            "clone": 220,
            "clone3": 435,
        },
    ),
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes | None:
    """The filter for `machine` (default: this one's) as bwrap reads it (an array of
    `struct sock_filter`), or None where no syscall table is known."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, refuse_x32, numbers = arch
    eperm = _RET_ERRNO | errno.EPERM
    enosys = _RET_ERRNO | errno.ENOSYS
    denied = [numbers[name] for name in DENIED]
    # Layout: header, one jump per denied call, the clone checks, then the return blocks.
    #   0 ld arch; 1 jeq audit_arch ? 3 : 2; 2 ret KILL; 3 ld nr; [4 jge x32 -> ERRNO]
    #   then: jeq nr_i -> EPERM (one each); jeq clone3 -> ENOSYS; jeq clone ? next : ALLOW;
    #   ld arg0; jset namespaces -> EPERM; ret ALLOW; ret EPERM; ret ENOSYS
    body: list[tuple[int, int, str | None, str | None]] = []  # (code, k, jt label, jf label)
    if refuse_x32:
        body.append((_JGE_K, _X32_BIT, "eperm", None))
    body.extend((_JEQ_K, nr, "eperm", None) for nr in denied)
    body.append((_JEQ_K, numbers["clone3"], "enosys", None))
    body.append((_JEQ_K, numbers["clone"], None, "allow"))
    body.append((_LD_W_ABS, _ARG0_LOW, None, None))
    body.append((_JSET_K, CLONE_NAMESPACES, "eperm", None))
    header = [
        _insn(_LD_W_ABS, _ARCH),
        _insn(_JEQ_K, audit_arch, 1, 0),
        _insn(_RET_K, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, _NR),
    ]
    start = len(header)
    labels = {
        "allow": start + len(body),
        "eperm": start + len(body) + 1,
        "enosys": start + len(body) + 2,
    }
    instructions = list(header)
    for offset, (code, k, jt, jf) in enumerate(body):
        here = start + offset
        jump_true = labels[jt] - here - 1 if jt else 0
        jump_false = labels[jf] - here - 1 if jf else 0
        if max(jump_true, jump_false) > 255:  # classic BPF jumps are 8 bits
            raise AssertionError("seccomp program too long for its jumps")
        instructions.append(_insn(code, k, jump_true, jump_false))
    instructions.append(_insn(_RET_K, _RET_ALLOW))
    instructions.append(_insn(_RET_K, eperm))
    instructions.append(_insn(_RET_K, enosys))
    return b"".join(instructions)


__all__ = ["CLONE_NAMESPACES", "DENIED", "program"]
