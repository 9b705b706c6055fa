"""``glidein-pilot``: the boot-time entry point the VM image's systemd unit (or the pod's
command, or the grid job's executable) runs."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from glidein_operator.pilot import bundle, condor_config, lifecycle, slot, sources
from glidein_operator.pilot.payload import PayloadError, decode

BOOT_LOG = Path("/var/log/glidein-pilot.log")


class BootLog:
    """Lines go to a file the console-log fetch finds, and to the console (EC2 and Nova
    console output show it); on OpenNebula they are posted through OneGate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.framed: list[str] = []

    def __call__(self, line: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} glidein-pilot: {line}"
        self.lines.append(stamped)
        print(stamped, file=sys.stderr, flush=True)
        try:
            with self.path.open("a") as handle:
                handle.write(stamped + "\n")
        except OSError:
            pass

    def print_tails(self, condor_log_dir: Path | None) -> None:
        """The ends of HTCondor's logs and of this one on the console, framed
        (``bundle.LOG_TAIL_BEGIN``/``END``): the console outlives the VM at the cloud, so
        the operator reads them there, for the pilot's log in ``.status.pilotLogs``."""
        self.framed = [
            *bundle.condor_log_frames(condor_log_dir),
            *bundle.frame(
                "glidein-pilot.log", "\n".join(self.lines), bundle.TAIL_LINES["glidein-pilot.log"]
            ),
        ]
        for line in self.framed:
            print(line, file=sys.stderr, flush=True)

    def publish_opennebula(self) -> None:
        if shutil.which("onegate"):
            import base64

            said = [*self.lines[-200:], *self.framed]
            data = base64.b64encode("\n".join(said).encode()).decode()
            subprocess.run(
                ["onegate", "vm", "update", "--data", f"GLIDEIN_BOOT_LOG={data}"], check=False
            )


ENV_PREFIX = "GLIDEIN_PILOT_"


def _parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="glidein-pilot",
        description="Configure and supervise a glidein pilot.",
        epilog=(
            f"Every option can also be set in the environment as {ENV_PREFIX}<OPTION> "
            f"(e.g. {ENV_PREFIX}STARTUP_TIMEOUT=60, {ENV_PREFIX}NO_SUPERVISE=1); the "
            "command line wins."
        ),
    )

    def opt(name: str, default: object, help: str, **kw: Any) -> None:
        env = ENV_PREFIX + name.upper().replace("-", "_")
        if kw.get("action") == "store_true":
            value: object = environ.get(env, "").strip().lower() in ("1", "true", "yes", "on")
        else:
            # argparse passes a string default through the option's type, as if typed.
            value = environ.get(env, default)
        p.add_argument(f"--{name}", default=value, help=f"{help} [{env}]", **kw)

    opt(
        "metadata-url",
        sources.metadata_url(environ),
        f"instance metadata service (EC2, OpenStack; default ${sources.METADATA_ENV}, "
        f"else {sources.METADATA_URL})",
    )
    opt(
        "context-file",
        None,
        "OpenNebula's context.sh (default: the first of "
        + ", ".join(str(c) for c in sources.CONTEXT_PATHS)
        + " that exists)",
        type=Path,
    )
    opt(
        "config-drive",
        None,
        "an OpenStack config drive's mount point (default: the first of "
        + ", ".join(str(c) for c in sources.CONFIG_DRIVE_PATHS)
        + " that holds openstack/latest/user_data)",
        type=Path,
    )
    opt("config-dir", "/etc/condor/config.d", "where the HTCondor configuration goes", type=Path)
    opt("token-dir", "/etc/condor/tokens.d", "where the pool token goes", type=Path)
    opt("log", str(BOOT_LOG), "boot log file", type=Path)
    opt(
        "condor-log-dir",
        None,
        "HTCondor's LOG directory, whose MasterLog, StartLog and StarterLogs end up on the "
        "console at a fatal error and at shutdown (default: condor_config_val LOG)",
        type=Path,
    )
    opt(
        "no-log-tails",
        False,
        "print no log ends at the end (the grid bootstrap prints its own)",
        action="store_true",
    )
    opt("no-supervise", False, "write the configuration and exit", action="store_true")
    opt("interval", 30.0, "seconds between looks at the startd", type=float)
    opt("shutdown-command", "poweroff", "run at the end, whatever happened before")
    opt(
        "startup-timeout",
        600.0,
        "seconds from boot for the startd to answer before the pilot gives up",
        type=float,
    )
    opt(
        "max-query-failures",
        5,
        "failed looks at a running startd in a row that mean it is gone",
        type=int,
    )
    opt(
        "startd-address-file",
        None,
        "the startd's address file (default: condor_config_val STARTD_ADDRESS_FILE)",
        type=Path,
    )
    opt(
        "startd-log",
        None,
        "the startd's log, read for the collector's refusals (default: condor_config_val "
        "STARTD_LOG)",
        type=Path,
    )
    opt("cgroup-root", str(slot.CGROUP_ROOT), "cgroup file system root", type=Path)
    opt(
        "machine-ad",
        environ.get("_CONDOR_MACHINE_AD"),
        "the batch slot's machine ad when the pilot runs as an HTCondor job "
        "(default: $_CONDOR_MACHINE_AD)",
        type=Path,
    )
    opt(
        "job-ad",
        environ.get("_CONDOR_JOB_AD"),
        "the pilot's own job ad when it runs as an HTCondor job: its RequestCpus and "
        "RequestMemory stand in for what the machine ad lacks (default: $_CONDOR_JOB_AD)",
        type=Path,
    )
    opt(
        "stop-timeout",
        60.0,
        "seconds condor_master has to stop its daemons at the end before it is made to",
        type=float,
    )
    opt("cpus", None, "at most this many cores", type=int)
    opt("memory-mb", None, "at most this much memory (MB)", type=int)
    return p


def stop_master(
    master: subprocess.Popen[bytes], log: Callable[[str], None], timeout: float
) -> None:
    """Leave no condor_master (nor its daemons) behind. On a VM the power-off would end
    them; on a batch slot the pilot's exit is the end, and the batch system may count what
    outlives it against the slot or kill it without a word. The supervisor has sent
    condor_off -graceful; a master that has not gone within ``timeout`` seconds (a refused
    condor_off, a daemon that hangs) gets its fast shutdown (SIGQUIT) and as long again,
    then SIGKILL."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        master.wait(timeout)
        return
    log(f"condor_master still running {timeout:g}s after condor_off: fast shutdown")
    master.send_signal(signal.SIGQUIT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        master.wait(timeout)
        return
    log("condor_master did not stop: killed")
    master.kill()
    master.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser(os.environ).parse_args(argv)
    log = BootLog(args.log)
    boot = int(time.time())
    try:
        ctx = sources.discover(
            metadata_url=args.metadata_url,
            context_paths=(args.context_file,) if args.context_file else sources.CONTEXT_PATHS,
            config_drives=(args.config_drive,) if args.config_drive else sources.CONFIG_DRIVE_PATHS,
        )
        payload = decode(ctx.raw, time.time())
    except (sources.SourceError, PayloadError) as exc:
        log(f"FATAL: {exc}")
        return _end(log, args, 2)
    pilot_id = ctx.resolve_pilot_id(payload.batch)
    log(
        f"payload v{payload.version} from {ctx.source}: pilot {pilot_id}, entry {payload.entry}, "
        f"collector {payload.collector}, lifetime {payload.lifetime}s"
    )
    if not args.no_supervise:
        needed = ["condor_master", "condor_status"]
        if args.startd_address_file is None:
            needed.append("condor_config_val")
        missing = [name for name in needed if shutil.which(name) is None]
        if missing:
            log(
                f"FATAL: {', '.join(missing)} not found on PATH ({os.environ.get('PATH', '')}): "
                "this image lacks HTCondor's execute packages"
            )
            return _end(log, args, 2)
    machine, why = slot.smallest(
        [
            slot.host(),
            slot.instance_type(payload),
            slot.cgroup(args.cgroup_root),
            slot.batch_slot(args.machine_ad, args.job_ad),
            slot.Limit("--cpus/--memory-mb", args.cpus, args.memory_mb),
        ]
    )
    log(f"slot: {why}")
    path = condor_config.write(args.config_dir, args.token_dir, payload, pilot_id, boot, machine)
    log(f"wrote {path}")
    if ctx.source == "opennebula-context":
        log.publish_opennebula()
    if args.no_supervise:
        return 0
    try:
        master = subprocess.Popen(["condor_master", "-f"])
    except OSError as exc:
        log(f"FATAL: cannot start condor_master: {exc}")
        return _end(log, args, 2)
    supervisor = lifecycle.Supervisor(
        payload,
        lifecycle.State(boot=boot, idle_since=None),
        log=log,
        shutdown_command=shlex.split(args.shutdown_command),
        address_file=args.startd_address_file,
        startd_log=args.startd_log,
        startup_timeout=args.startup_timeout,
        max_failures=args.max_query_failures,
        master_exit=master.poll,
        before_shutdown=lambda: _tails(log, args),
    )
    while supervisor.tick(time.time()) is not lifecycle.Action.SHUTDOWN:
        time.sleep(args.interval)
    stop_master(master, log, args.stop_timeout)
    if supervisor.fatal:
        return 2
    return 0 if supervisor.powered_off else 1


def _log_dir(args: argparse.Namespace) -> Path | None:
    if args.condor_log_dir is not None:
        return Path(args.condor_log_dir)
    try:
        found = lifecycle.run(["condor_config_val", "LOG"]).strip()
    except lifecycle.COMMAND_ERRORS:
        return None  # no HTCondor (the fatal error may be just that): the pilot's own log
    return Path(found) if found else None


def _tails(log: BootLog, args: argparse.Namespace) -> None:
    """The log ends where the operator reads them: the console, and OneGate on OpenNebula
    (done before the power-off, which ends everything)."""
    if not args.no_log_tails:
        log.print_tails(_log_dir(args))
    log.publish_opennebula()


def _end(log: BootLog, args: argparse.Namespace, code: int) -> int:
    """A fatal error before supervision: the log ends on the console, then exit."""
    _tails(log, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
