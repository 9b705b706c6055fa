"""``glidein-pilot``: the boot-time entry point the VM image's systemd unit (or the pod's
command, or the grid job's executable) runs."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from glidein_operator.pilot import condor_config, lifecycle, sources
from glidein_operator.pilot.payload import PayloadError, decode

BOOT_LOG = Path("/var/log/glidein-pilot.log")


class BootLog:
    """Lines go to a file the console-log fetch finds, and to the console (EC2 and Nova
    console output show it); on OpenNebula they are posted through OneGate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} glidein-pilot: {line}"
        self.lines.append(stamped)
        print(stamped, file=sys.stderr, flush=True)
        try:
            with self.path.open("a") as handle:
                handle.write(stamped + "\n")
        except OSError:
            pass

    def publish_opennebula(self) -> None:
        if shutil.which("onegate"):
            import base64

            data = base64.b64encode("\n".join(self.lines[-200:]).encode()).decode()
            subprocess.run(
                ["onegate", "vm", "update", "--data", f"GLIDEIN_BOOT_LOG={data}"], check=False
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="glidein-pilot", description="Configure and supervise a glidein pilot."
    )
    p.add_argument("--metadata-url", default=sources.METADATA_URL)
    p.add_argument("--config-dir", type=Path, default=Path("/etc/condor/config.d"))
    p.add_argument("--token-dir", type=Path, default=Path("/etc/condor/tokens.d"))
    p.add_argument("--log", type=Path, default=BOOT_LOG)
    p.add_argument("--no-supervise", action="store_true", help="write the configuration and exit")
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--shutdown-command", default="poweroff")
    args = p.parse_args(argv)
    log = BootLog(args.log)
    boot = int(time.time())
    try:
        ctx = sources.discover(metadata_url=args.metadata_url)
        payload = decode(ctx.raw, time.time())
    except (sources.SourceError, PayloadError) as exc:
        log(f"FATAL: {exc}")
        log.publish_opennebula()
        return 2
    pilot_id = ctx.resolve_pilot_id(payload.batch)
    log(
        f"payload v{payload.version} from {ctx.source}: pilot {pilot_id}, entry {payload.entry}, "
        f"collector {payload.collector}, lifetime {payload.lifetime}s"
    )
    machine = condor_config.Machine(cpus=os.cpu_count() or 1, memory_mb=_memory_mb())
    path = condor_config.write(args.config_dir, args.token_dir, payload, pilot_id, boot, machine)
    log(f"wrote {path}")
    if ctx.source == "opennebula-context":
        log.publish_opennebula()
    if args.no_supervise:
        return 0
    subprocess.Popen(["condor_master", "-f"])
    supervisor = lifecycle.Supervisor(
        payload,
        lifecycle.State(boot=boot, idle_since=None),
        log=log,
        shutdown_command=args.shutdown_command.split(),
    )
    while supervisor.tick(time.time()) is not lifecycle.Action.SHUTDOWN:
        time.sleep(args.interval)
    return 0


def _memory_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 1024


if __name__ == "__main__":
    sys.exit(main())
