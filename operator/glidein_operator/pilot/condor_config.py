"""The HTCondor configuration a pilot runs with, from its payload."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from glidein_operator.pilot.payload import Payload


def classad_string(value: str) -> str:
    return json.dumps(value)  # ClassAd string literals escape like JSON strings


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_mb: int


def render(payload: Payload, pilot_id: str, boot: int, machine: Machine, token_dir: Path) -> str:
    retire = boot + payload.lifetime - payload.retire_before_end
    die = boot + payload.lifetime
    collector_host = payload.collector.split(":")[0]
    attrs = {
        "GlideinPilotId": classad_string(pilot_id),
        "GlideinRequestUid": classad_string(payload.request_uid),
        "GlideinEntryName": classad_string(payload.entry),
        "GLIDEIN_Site": classad_string(payload.site),
        "GlideinToRetire": str(retire),
        "GlideinToDie": str(die),
        **payload.attributes,
    }
    lines = [
        f"# Written by glidein-pilot for {pilot_id}; do not edit.",
        f"CONDOR_HOST = {payload.collector}",
        f"COLLECTOR_HOST = {payload.collector}",
        "DAEMON_LIST = MASTER, STARTD",
        "USE_SHARED_PORT = False",
        f"TRUST_DOMAIN = {collector_host}",
        "SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS",
        "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
        f"SEC_TOKEN_DIRECTORY = {token_dir}",
        f"NUM_CPUS = {machine.cpus}",
        f"MEMORY = {machine.memory_mb}",
        *(f"{k} = {v}" for k, v in attrs.items()),
        "STARTD_ATTRS = $(STARTD_ATTRS) " + " ".join(attrs),
        # No new jobs once retiring: running ones finish within retireBeforeEnd.
        f"START = ({payload.start_expression}) && (time() < GlideinToRetire)",
        f"STARTD_NOCLAIM_SHUTDOWN = {payload.idle_timeout}",
        "MASTER.DAEMON_SHUTDOWN_FAST = time() > GlideinToDie",
        "STARTD.DAEMON_SHUTDOWN = time() > GlideinToDie",
    ]
    if payload.partitionable:
        lines += [
            "NUM_SLOTS = 1",
            "NUM_SLOTS_TYPE_1 = 1",
            "SLOT_TYPE_1 = 100%",
            "SLOT_TYPE_1_PARTITIONABLE = True",
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
