"""A container's (or a Slurm job's) cgroup memory limit, read from a fake cgroup tree: /proc/meminfo counts the
whole machine, so a 16 GiB container on a 256 GiB host planned as if 256 GiB were there and was killed part way."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from motif_lite.runtime.host_memory import HostNeeds, available_ram, more_memory_fix, plan_host
from motif_lite.runtime.memory_limit import MemoryLimit, memory_limit
from motif_lite.units import memory_size

GiB = 1024**3


def cgroup_tree(tmp_path: Path, proc_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A fake /sys/fs/cgroup (files by path under it) and /proc/self/cgroup (one line)."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(proc_line + "\n")
    return root, proc


def test_a_cgroup_v2_containers_limit_less_its_usage_is_available(tmp_path):
    # docker run --memory 16g: its own cgroup namespace, so /proc/self/cgroup says "0::/" and the mount is its own.
    root, proc = cgroup_tree(tmp_path, "0::/", {
        "memory.max": str(16 * GiB), "memory.current": str(3 * GiB), "memory.stat": f"anon 1\ninactive_file {GiB}",
    })  # fmt: skip
    limit = memory_limit(root, proc)
    assert limit == MemoryLimit(limit_bytes=16 * GiB, used_bytes=2 * GiB, version=2)  # dropped cache is free
    assert limit.available_bytes == 14 * GiB


def test_cgroup_v2_takes_the_tightest_limit_of_the_cgroup_and_those_above_it(tmp_path):
    # A Kubernetes pod's limit on the pod's cgroup, the container's below it without one; a systemd slice above.
    root, proc = cgroup_tree(tmp_path, "0::/kubepods/pod1/ctr", {
        "kubepods/memory.max": str(200 * GiB), "kubepods/memory.current": str(50 * GiB),
        "kubepods/pod1/memory.max": str(8 * GiB), "kubepods/pod1/memory.current": str(GiB),
        "kubepods/pod1/ctr/memory.max": "max", "kubepods/pod1/ctr/memory.current": str(GiB),
    })  # fmt: skip
    assert memory_limit(root, proc) == MemoryLimit(8 * GiB, GiB, version=2)


def test_no_cgroup_limit_is_none(tmp_path):
    v2 = cgroup_tree(tmp_path / "v2", "0::/user.slice", {
        "user.slice/memory.max": "max", "user.slice/memory.current": "5",
    })  # fmt: skip
    v1 = cgroup_tree(tmp_path / "v1", "4:memory:/", {
        "memory/memory.limit_in_bytes": "9223372036854771712", "memory/memory.usage_in_bytes": str(GiB),
    })  # fmt: skip
    assert memory_limit(*v2) is None and memory_limit(*v1) is None
    assert memory_limit(tmp_path / "none", tmp_path / "no-proc-file") is None  # macOS, Windows


def test_a_cgroup_v1_limit_is_the_hierarchical_one(tmp_path):
    # Older hosts and many Slurm clusters: the job's folder has no limit of its own, the one above it has 12 GiB.
    root, proc = cgroup_tree(tmp_path, "11:cpuset:/\n4:memory,foo:/slurm/job_7", {
        "memory/slurm/job_7/memory.limit_in_bytes": "9223372036854771712",
        "memory/slurm/job_7/memory.usage_in_bytes": str(5 * GiB),
        "memory/slurm/job_7/memory.stat": f"cache 1\nhierarchical_memory_limit {12 * GiB}\ntotal_inactive_file {GiB}",
    })  # fmt: skip
    assert memory_limit(root, proc) == MemoryLimit(12 * GiB, 4 * GiB, version=1)


def test_a_container_seeing_the_hosts_cgroup_path_reads_its_own_mount(tmp_path):
    # Without a cgroup namespace the path is the host's, which is not mounted inside: the mount is the container's.
    root, proc = cgroup_tree(tmp_path, "0::/system.slice/docker-abc.scope", {
        "memory.max": str(4 * GiB), "memory.current": str(GiB),
    })  # fmt: skip
    assert memory_limit(root, proc) == MemoryLimit(4 * GiB, GiB, version=2)


def test_a_cgroup_v1_container_seeing_the_hosts_path_reads_its_own_mount(tmp_path):
    # v1 reads one folder only (its limit is already the hierarchy's), so the mount must stand in for the host's path.
    root, proc = cgroup_tree(tmp_path, "9:memory:/docker/abc", {
        "memory/memory.limit_in_bytes": str(6 * GiB), "memory/memory.usage_in_bytes": str(2 * GiB),
    })  # fmt: skip
    assert memory_limit(root, proc) == MemoryLimit(6 * GiB, 2 * GiB, version=1)


def test_usage_past_the_limit_leaves_nothing_available_not_less(tmp_path):
    # The usage can pass the limit a moment before the kernel reclaims: nothing is available, not a negative size.
    assert MemoryLimit(limit_bytes=4 * GiB, used_bytes=5 * GiB, version=2).available_bytes == 0


def test_the_planner_counts_the_container_limit_not_the_hosts_ram(tmp_path):
    # The gap: a 16 GiB container on a 256 GiB host. /proc/meminfo says far more than the limit leaves.
    limit = MemoryLimit(limit_bytes=16 * GiB, used_bytes=GiB, version=2)
    available = available_ram(limit)
    assert available is not None and available <= 15 * GiB
    needs = HostNeeds(
        cuda=True, text_bytes=16 * GiB, text_staging_bytes=0, transformer_bytes=4 * GiB, streamed_bytes=0,
        streamed_pinned_bytes=0, block_staging_bytes=0, vae_bytes=0, video_bytes=0, activation_bytes=0,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="available now") as said:
        plan_host(needs, None, available)
    assert f"more than the {memory_size(available)} available now" in str(said[0].message)
    # The advice ends with where more memory comes from: the limit, and the settings that raise it.
    assert more_memory_fix(limit).startswith(  # WSL's fix may follow
        "; or raise this container's or job's memory limit, now 16.00 GiB (cgroup v2; docker run --memory, "
        "Kubernetes resources.limits.memory, Slurm --mem)"
    )
    assert "(cgroup v1; " in more_memory_fix(MemoryLimit(limit_bytes=16 * GiB, used_bytes=GiB, version=1))


def test_check_says_the_containers_memory_limit_where_there_is_one():
    # `free` and /proc/meminfo show the host's memory in a container: check names the limit the run must fit in.
    from motif_lite.checkup.environment import _check_memory_limit
    from motif_lite.checkup.report import Checkup

    report = Checkup()
    _check_memory_limit(report, MemoryLimit(limit_bytes=16 * GiB, used_bytes=GiB, version=2))
    [finding] = report.findings
    assert (finding.level, finding.subject) == ("ok", "memory limit")
    assert finding.message.startswith("16.00 GiB of this machine's ")
    assert "(cgroup v2: this container's or job's), 15.00 GiB of it available now" in finding.message
    report = Checkup()
    _check_memory_limit(report, None)
    assert report.findings == []


def test_cgroup_v1_counts_the_usage_of_the_folder_whose_limit_it_is(tmp_path):
    # A Slurm job of 16 GiB with 15 GiB used by all its steps, 1 GiB of it by this step: 1 GiB is left, not 15.
    job = "memory/slurm/uid_1/job_9"
    root, proc = cgroup_tree(tmp_path, "4:memory:/slurm/uid_1/job_9/step_1", {
        f"{job}/memory.limit_in_bytes": str(16 * GiB), f"{job}/memory.usage_in_bytes": str(15 * GiB),
        f"{job}/step_1/memory.limit_in_bytes": "9223372036854771712",
        f"{job}/step_1/memory.usage_in_bytes": str(GiB),
        f"{job}/step_1/memory.stat": f"hierarchical_memory_limit {16 * GiB}\ntotal_inactive_file 0",
    })  # fmt: skip
    limit = memory_limit(root, proc)
    assert limit == MemoryLimit(16 * GiB, 15 * GiB, version=1)
    assert limit.available_bytes == GiB


def test_check_warns_of_a_memory_limit_that_leaves_nearly_nothing(tmp_path, monkeypatch):
    # A v2 limit of 4 GiB with 5 GiB charged to it leaves 0: check called that "ok". Through check_environment,
    # which reads the limit itself.
    from motif_lite.checkup import environment
    from motif_lite.checkup.report import Checkup

    def limit_findings(limit: int, used: int) -> list:
        root, proc = cgroup_tree(tmp_path / f"{limit}-{used}", "0::/", {
            "memory.max": str(limit), "memory.current": str(used),
        })  # fmt: skip
        monkeypatch.setattr(environment, "memory_limit", lambda: memory_limit(root, proc))
        report = Checkup()
        environment.check_environment(report)
        return [finding for finding in report.findings if finding.subject == "memory limit"]

    [finding] = limit_findings(4 * GiB, 5 * GiB)
    assert finding.level == "warning", finding
    said = "(cgroup v2: this container's or job's), 0 GiB of it available now: a run is likely killed"
    assert said in finding.message, finding.message
    # 3 GiB left was "ok" under a hand-set 2 GiB floor, yet the smallest run the planner makes needs more as it
    # loads: the floor is the planner's own figure now, named in the warning.
    from motif_lite.memory_plan import smallest_run_host_bytes

    floor = smallest_run_host_bytes("cuda" if torch.cuda.is_available() else "cpu")
    [finding] = limit_findings(8 * GiB, 5 * GiB)
    assert finding.level == "warning" and f"needs about {memory_size(floor)})" in finding.message, finding
    assert "one 64x64 frame with the transformer in Q2_K, the text encoder in Q4_K_M" in finding.message
    # docs/usage.md's figures ("The memory limit"): about 4.5 GiB on the CPU, 6.5 GiB with a GPU.
    assert (round(smallest_run_host_bytes("cpu") / GiB, 1), round(smallest_run_host_bytes("cuda") / GiB, 1)) == (
        4.5,
        6.5,
    )
    [finding] = limit_findings(16 * GiB, GiB)
    assert (finding.level, finding.message.endswith("runs plan their host memory within it")) == ("ok", True)
    # The floor is the runs' of this machine: with a GPU here, 6 GiB left is short of a GPU run's 6.5 (on the CPU
    # it would do).
    from motif_lite import memory_plan

    floors = {device: smallest_run_host_bytes(device) for device in ("cpu", "cuda")}
    with_gpu = floors["cuda"]
    root, proc = cgroup_tree(tmp_path / "gpu", "0::/", {"memory.max": str(8 * GiB), "memory.current": str(2 * GiB)})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the planner's figures are those asked above
    monkeypatch.setattr(memory_plan, "smallest_run_host_bytes", floors.__getitem__)
    report = Checkup()
    environment._check_memory_limit(report, memory_limit(root, proc))
    [finding] = report.findings
    assert finding.level == "warning" and f"needs about {memory_size(with_gpu)})" in finding.message, finding
