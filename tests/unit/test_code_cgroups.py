"""Finding and preparing a cgroup v2 subtree for the sandbox's slots (slots.py), on a fake
cgroup tree (this is the decision logic; tests/sandbox/test_code_containment.py has a memory
hog contained by whichever cgroup the host gives)."""

from __future__ import annotations

from pathlib import Path

from assistants_grpc.tools.code_interpreter.slots import CGROUP_GROUP, _v2_cgroup, v2_group

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = """\
25 30 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_the_servers_own_v2_cgroup_is_found(tmp_path: Path) -> None:
    mountinfo, cgroup = tmp_path / "mountinfo", tmp_path / "cgroup"
    mountinfo.write_text(UNIFIED)
    cgroup.write_text("0::/system.slice/assistants.service/server\n")
    assert _v2_cgroup(str(mountinfo), str(cgroup)) == Path(
        "/sys/fs/cgroup/system.slice/assistants.service/server"
    )
    mountinfo.write_text(HYBRID)
    cgroup.write_text("4:memory:/x\n0::/\n")
    assert _v2_cgroup(str(mountinfo), str(cgroup)) == Path("/sys/fs/cgroup/unified")
    mountinfo.write_text(HYBRID.replace("cgroup2 cgroup2", "tmpfs tmpfs"))
    assert _v2_cgroup(str(mountinfo), str(cgroup)) is None


def test_a_v2_cgroup_without_memory_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")  # this machine's unified one
    group, note = v2_group(tmp_path)
    assert group is None and "no memory controller" in note
    assert not (tmp_path / CGROUP_GROUP).exists()


def test_a_v2_cgroup_gets_memory_and_pids_enabled_for_the_slots(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu\n")
    group, note = v2_group(tmp_path)
    assert group == tmp_path / CGROUP_GROUP
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (group / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert "v2" in note and str(group) in note
    # Already enabled above: only the group's own children are set up.
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    group, _ = v2_group(tmp_path)
    assert (tmp_path / "cgroup.subtree_control").read_text() == "memory pids\n"
    assert group is not None and (group / "cgroup.subtree_control").read_text() == "+memory"


def test_a_v2_cgroup_that_cannot_be_written_says_why(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    (tmp_path / "cgroup.subtree_control").mkdir()  # writing it fails (as EBUSY would)
    group, note = v2_group(tmp_path)
    assert group is None and "not usable for sessions" in note
