"""How big the pilot's slot is: the smallest of what is known about its allocation.

HTCondor sizes a startd from the host it sees (every core, all memory), but a pilot is
often given less: a pod its container's cgroup limits, a grid pilot the batch slot it
runs in (and that slot's cgroup), a VM the instance type the planner chose. Advertising
the host would offer jobs room the pilot does not have, and the kernel or the batch
system would kill them for it. The host still bounds every figure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from glidein_operator.pilot.condor_config import Machine
from glidein_operator.pilot.payload import Payload

MIB = 2**20
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Larger limits mean "none" (cgroup v1 writes PAGE_COUNTER_MAX pages, about 2**63 bytes).
_UNLIMITED = 2**60


@dataclass(frozen=True)
class Limit:
    """What one source says about the pilot's share; None: it does not say."""

    source: str
    cpus: int | None = None
    memory_mb: int | None = None


def host(meminfo: Path = Path("/proc/meminfo")) -> Limit:
    # The cores this process may run on (a cpuset can hide some), not all of the machine's.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    return Limit("host", cpus or 1, memory)


def instance_type(payload: Payload) -> Limit:
    return Limit(
        f"instance type {payload.instance_type or '?'}",
        payload.cpus or None,
        payload.memory_mb or None,
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpus_from_quota(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:
        return None  # -1 (v1) or "max" (v2): no quota
    # Whole cores, rounded down: 1.5 cores of quota run one single-core job at full speed,
    # two would both be throttled.
    return max(1, quota // period)


def _memory_from_bytes(text: str | None) -> int | None:
    if text is None or not text.isdigit() or int(text) >= _UNLIMITED:
        return None  # absent, "max" (v2), or v1's "unlimited"
    return max(1, int(text) // MIB)


def _own_cgroup_v2(proc_self_cgroup: Path) -> str:
    for line in (_read(proc_self_cgroup) or "").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return "/"


def cgroup(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> Limit:
    """The container's (or batch slot's) limits. cgroup v2: this process's own cgroup and
    each above it up to ``root``, as any of them may hold the limit (a pod's, a
    container's); inside a cgroup namespace the own cgroup is ``root`` itself. cgroup v1:
    the cpu and memory controllers' top directories, which are the container's own."""
    cpus: list[int] = []
    memory: list[int] = []
    if (root / "cgroup.controllers").exists():
        here = root / _own_cgroup_v2(proc_self_cgroup).strip("/")
        for level in (here, *here.parents):
            if root != level and root not in level.parents:
                break
            fields = (_read(level / "cpu.max") or "").split()
            if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                got = _cpus_from_quota(int(fields[0]), int(fields[1]))
                if got is not None:
                    cpus.append(got)
            mem = _memory_from_bytes(_read(level / "memory.max"))
            if mem is not None:
                memory.append(mem)
    else:
        quota, period = _read(root / "cpu/cpu.cfs_quota_us"), _read(root / "cpu/cpu.cfs_period_us")
        if quota and period and re.fullmatch(r"-?\d+", quota) and period.isdigit():
            got = _cpus_from_quota(int(quota), int(period))
            if got is not None:
                cpus.append(got)
        mem = _memory_from_bytes(_read(root / "memory/memory.limit_in_bytes"))
        if mem is not None:
            memory.append(mem)
    return Limit("cgroup", min(cpus, default=None), min(memory, default=None))


_AD_ATTR = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(\d+)\s*$")


def _ad_integers(path: Path | None) -> dict[str, int]:
    """The integer-valued attributes of a ClassAd file (old, long form: ``Name = value``
    lines), by lower-case name; expressions and other types are left out."""
    found: dict[str, int] = {}
    for line in ((_read(path) if path else None) or "").splitlines():
        m = _AD_ATTR.match(line)
        if m:
            found.setdefault(m.group(1).lower(), int(m.group(2)))
    return found


def batch_slot(machine_ad: Path | None, job_ad: Path | None = None) -> Limit:
    """The HTCondor slot a grid pilot runs in, from the machine ad HTCondor hands each job
    (the file ``_CONDOR_MACHINE_AD`` names): its ``Cpus`` and ``Memory`` (MB). Where that
    ad is missing or lacks one, what the job asked for (``RequestCpus``, ``RequestMemory``
    in the job ad ``_CONDOR_JOB_AD`` names): the batch system gave at least that."""
    machine = _ad_integers(machine_ad)
    job = _ad_integers(job_ad)
    cpus = machine.get("cpus") or job.get("requestcpus") or None
    memory = machine.get("memory") or job.get("requestmemory") or None
    return Limit("batch slot", cpus, memory)


def smallest(limits: Iterable[Limit]) -> tuple[Machine, str]:
    """The slot, and a line for the boot log saying where each figure came from."""
    limits = list(limits)
    chosen: dict[str, int] = {}
    said: list[str] = []
    # Without any figure (no /proc/meminfo), what the pilot always assumed.
    for dim, unit, fallback in (("cpus", "", 1), ("memory_mb", " MB", 1024)):
        known: dict[str, int] = {
            lim.source: v for lim in limits if (v := getattr(lim, dim)) is not None
        }
        chosen[dim] = max(1, min(known.values(), default=fallback))
        sources = ", ".join(f"{src} {v}" for src, v in known.items()) or "nothing known"
        said.append(f"{dim.split('_')[0]} {chosen[dim]}{unit} (smallest of: {sources})")
    return Machine(cpus=chosen["cpus"], memory_mb=chosen["memory_mb"]), "; ".join(said)
