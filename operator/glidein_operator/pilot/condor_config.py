"""The HTCondor configuration a pilot runs with, from its payload."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from glidein_operator.pilot import attributes
from glidein_operator.pilot.payload import Payload

# condor_shared_port's port when the pilot has one inbound port (HTCondor's default).
SHARED_PORT_PORT = 9618


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_mb: int


def offer(payload: Payload, machine: Machine) -> attributes.Offer:
    """What the planner matched jobs on, as the payload carries it. GLIDEIN_CPUS and
    GLIDEIN_MaxMemMBs are the instance type's, as the planner saw them; a payload of an
    older operator does not say, and then they are the slot's."""
    return attributes.Offer(
        entry=payload.entry,
        site=payload.site,
        trust_domain=payload.entry_trust_domain,
        resource_type=payload.resource_type,
        instance_type=payload.instance_type,
        price_per_hour=payload.price_per_hour,
        cpus=payload.cpus or machine.cpus,
        memory_mb=payload.memory_mb or machine.memory_mb,
        os_name=payload.os_name,
        os_version=payload.os_version,
        provides=payload.provides,
        attributes=payload.attributes,
    )


def _network(payload: Payload) -> list[str]:
    # Both settings are written either way: images ship their own (HTCondor's execute
    # container sets CCB_ADDRESS), and the request, not the image, decides.
    lines = [f"CCB_ADDRESS = {'$(COLLECTOR_HOST)' if payload.ccb else ''}"]
    if payload.shared_port:
        lines += ["USE_SHARED_PORT = True", f"SHARED_PORT_PORT = {SHARED_PORT_PORT}"]
    else:
        lines += ["USE_SHARED_PORT = False"]
    return lines


def render(payload: Payload, pilot_id: str, boot: int, machine: Machine, token_dir: Path) -> str:
    retire = boot + payload.lifetime - payload.retire_before_end
    die = boot + payload.lifetime
    attrs = attributes.pilot_attributes(
        offer(payload, machine),
        factory=payload.factory,
        name=payload.request,
        pilot_id=pilot_id,
        request_uid=payload.request_uid,
        to_retire=retire,
        to_die=die,
    )
    daemons = ["MASTER", "STARTD"] + (["SHARED_PORT"] if payload.shared_port else [])
    lines = [
        f"# Written by glidein-pilot for {pilot_id}; do not edit.",
        f"CONDOR_HOST = {payload.collector}",
        f"COLLECTOR_HOST = {payload.collector}",
        "DAEMON_LIST = " + ", ".join(daemons),
        *_network(payload),
        # Only for the pilot's own view: it picks the token whose issuer is the collector's.
        f"TRUST_DOMAIN = {payload.trust_domain or payload.collector}",
        # glidein-pilot's own commands to these daemons (condor_status -direct, condor_drain,
        # condor_off: lifecycle.py) prove with FS that they come from this machine; the
        # pool's token is no use here, these daemons cannot check its signature. Who may
        # then drain or stop them is the image's ALLOW_ADMINISTRATOR (HTCondor's packaged
        # security:recommended admits condor@* and root@*; a root tool is condor to FS).
        "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS",
        "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
        "TOOL.SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS",
        f"SEC_TOKEN_DIRECTORY = {token_dir}",
        f"NUM_CPUS = {machine.cpus}",
        f"MEMORY = {machine.memory_mb}",
        *(f"{k} = {v}" for k, v in attrs.items()),
        "STARTD_ATTRS = $(STARTD_ATTRS) " + " ".join(attrs),
        # The master evaluates DAEMON_SHUTDOWN* against its own ad, which holds only what
        # MASTER_ATTRS names: without this GLIDEIN_ToDie is undefined there, never true.
        f"MASTER_ATTRS = $(MASTER_ATTRS) {attributes.TO_DIE}",
        # No new jobs once retiring: running ones finish within retireBeforeEnd.
        f"START = ({payload.start_expression}) && (time() < {attributes.TO_RETIRE})",
        f"STARTD_NOCLAIM_SHUTDOWN = {payload.idle_timeout}",
        f"MASTER.DAEMON_SHUTDOWN_FAST = time() > {attributes.TO_DIE}",
        f"STARTD.DAEMON_SHUTDOWN = time() > {attributes.TO_DIE}",
    ]
    # One slot either way, spelled out: HTCondor's default (one partitionable slot in
    # 25.x) must not decide for a request that asked for a static one (one job a pilot).
    lines += [
        "NUM_SLOTS = 1",
        "NUM_SLOTS_TYPE_1 = 1",
        "SLOT_TYPE_1 = 100%",
        f"SLOT_TYPE_1_PARTITIONABLE = {payload.partitionable}",
    ]
    lines += [f"{k} = {v}" for k, v in payload.extra_config.items()]
    return "\n".join(lines) + "\n"


def write(
    config_dir: Path, token_dir: Path, payload: Payload, pilot_id: str, boot: int, machine: Machine
) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_dir.chmod(0o700)
    token = token_dir / "glidein-pilot.token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(payload.token + "\n")
    token.chmod(0o600)
    path = config_dir / "50-glidein-pilot.conf"
    path.write_text(render(payload, pilot_id, boot, machine, token_dir))
    return path
