"""Idle timeout and hard lifetime, enforced from inside: retire, then shut down.

``decide`` is pure (time comes in); ``Supervisor`` applies it through the HTCondor
commands and the machine's power-off, both replaceable in tests.
"""

from __future__ import annotations

import enum
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from glidein_operator.pilot.payload import Payload


class Action(enum.StrEnum):
    NONE = "none"
    RETIRE = "retire"
    SHUTDOWN = "shutdown"


@dataclass
class State:
    boot: float
    idle_since: float | None  # None while a job runs
    retiring: bool = False


def decide(payload: Payload, state: State, now: float) -> tuple[Action, str]:
    if now >= state.boot + payload.lifetime:
        return Action.SHUTDOWN, "hard lifetime reached"
    if state.retiring and state.idle_since is not None:
        return Action.SHUTDOWN, "retired: no job left"
    if state.idle_since is not None and now - state.idle_since >= payload.idle_timeout:
        return Action.SHUTDOWN, f"idle for {int(now - state.idle_since)}s"
    if not state.retiring and now >= state.boot + payload.lifetime - payload.retire_before_end:
        return Action.RETIRE, "retiring before the end of the lifetime"
    return Action.NONE, ""


Runner = Callable[[Sequence[str]], str]

# What a failed command raises: non-zero exit (CalledProcessError), no answer in time
# (TimeoutExpired), no such binary or no permission (OSError).
COMMAND_ERRORS: tuple[type[Exception], ...] = (subprocess.SubprocessError, OSError)

# Slot states in which a job holds the slot (or is about to, or is being evicted). A
# partitionable slot itself stays Unclaimed: its dynamic slots carry the claims.
BUSY_STATES = frozenset({"Claimed", "Matched", "Preempting"})


def run(cmd: Sequence[str]) -> str:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, timeout=60).stdout


# What a startd logs when the collector will not take its ad (no token it accepts: wrong
# key or issuer; or an identity the pool does not allow). The pilot repeats it in its
# console with REFUSED, where the operator reads it when it reaps the pilot as stuck.
REFUSAL_MARKS = (
    "AUTHENTICATE:",
    'Received "DENIED"',
    "PERMISSION DENIED",
    "failed, so aborting command UPDATE_STARTD_AD",
)
REFUSED = "the collector refused this pilot's ad: "
# Of those, the ones about the credential itself: they do not pass with time.
CREDENTIAL_REFUSALS = ("AUTHENTICATE:", "DENIED")


def refusal(startd_log: str) -> str | None:
    """Why the collector refused the startd, from its log: the last such line, without
    its timestamp; None when nothing was refused."""
    found = [line for line in startd_log.splitlines() if any(m in line for m in REFUSAL_MARKS)]
    if not found:
        return None
    # Authentication and authorization errors say why; "aborting command" only that.
    best = [line for line in found if "aborting command" not in line] or found
    parts = best[-1].split(" ", 2)
    return parts[2].strip() if len(parts) == 3 and "/" in parts[0] else best[-1].strip()


def refusal_in_console(console: str) -> str | None:
    """What a pilot said of the collector's refusal, from its console log."""
    for line in reversed(console.splitlines()):
        if REFUSED in line:
            return line.split(REFUSED, 1)[1].strip()
    return None


class QueryError(RuntimeError):
    """The startd's slots could not be read this time."""


class Supervisor:
    """Runs ``decide`` against the local startd, once per ``tick``.

    Start-up: until the startd first answers, failed queries are expected (the master
    is still starting it); past ``startup_timeout`` seconds from boot it is given up on.
    After that, a failed query leaves the slot state unknown for that tick, and
    ``max_failures`` failures in a row mean the startd is gone. Either way the pilot
    shuts down, as it does when ``master_exit`` reports that condor_master has exited.
    """

    def __init__(
        self,
        payload: Payload,
        state: State,
        *,
        runner: Runner = run,
        log: Callable[[str], None] = print,
        shutdown_command: Sequence[str] = ("poweroff",),
        address_file: Path | None = None,
        startup_timeout: float = 600.0,
        max_failures: int = 5,
        master_exit: Callable[[], int | None] = lambda: None,
        startd_log: Path | None = None,
        before_shutdown: Callable[[], None] = lambda: None,
    ) -> None:
        self.payload, self.state, self.runner, self.log = payload, state, runner, log
        self.shutdown_command = tuple(shutdown_command)
        self.address_file = address_file
        self.address = ""  # where the startd last answered
        self.startup_timeout = startup_timeout
        self.max_failures = max(1, max_failures)
        self.master_exit = master_exit
        self.started = False  # the startd has answered once
        self.waiting = False  # said so in the log, once
        self.fatal = False  # shut down because something broke, not by decision
        self.failures = 0  # failed queries in a row since it last answered
        self.powered_off: bool | None = None  # whether the shutdown command succeeded
        self.startd_log = startd_log
        self.before_shutdown = before_shutdown
        self.refused = ""  # the collector's refusal, said once in the boot log

    def startd_address(self) -> str:
        """The startd's own address (its sinful string), from the file it writes once it
        listens (STARTD_ADDRESS_FILE).

        Not ``condor_status -direct localhost``: -direct takes a daemon name and looks it
        up, and the name is ``<STARTD_NAME>@<full hostname>``, so "localhost" finds no
        startd (HTCondor 25: "unknown host localhost"), nor does the host name once the
        startd has a STARTD_NAME. The address file needs neither a name nor the
        collector, holds the address the startd really listens on (127.0.0.1 only, or a
        shared port's ``?sock=``), and is absent until the startd is up. condor_who
        -quick reads the same files but reports only whether the startd is alive, not
        whether its slots are claimed."""
        if self.address_file is None:
            path = self.runner(["condor_config_val", "STARTD_ADDRESS_FILE"]).strip()
            if not path:
                raise QueryError("condor_config_val gave no STARTD_ADDRESS_FILE")
            self.address_file = Path(path)
        try:
            lines = self.address_file.read_text().splitlines()
        except OSError as exc:
            raise QueryError(f"no startd address yet ({exc.strerror}: {exc.filename})") from None
        address = lines[0].strip() if lines else ""
        if not address.startswith("<"):
            raise QueryError(f"no startd address in {self.address_file}")
        return address

    def busy(self) -> bool:
        """Whether a job holds any of the startd's slots; QueryError when it cannot tell."""
        try:
            address = self.startd_address()
            out = self.runner(["condor_status", "-direct", address, "-af", "State"])
        except COMMAND_ERRORS as exc:
            raise QueryError(_describe(exc)) from None
        self.address = address
        return any(line.strip() in BUSY_STATES for line in out.splitlines())

    def check_refusal(self) -> bool:
        """Say once in the boot log (the console) why the collector refuses the startd;
        whether it is a refusal of the pilot's credential (not a passing failure)."""
        if self.refused:
            return False
        try:
            if self.startd_log is None:
                path = self.runner(["condor_config_val", "STARTD_LOG"]).strip()
                if not path:
                    return False
                self.startd_log = Path(path)
            with self.startd_log.open("rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - 65536))
                text = handle.read().decode("utf-8", errors="replace")
        except (subprocess.SubprocessError, OSError):
            return False  # no log yet (or no HTCondor tools): nothing to say
        why = refusal(text)
        if not why:
            return False
        self.refused = why
        self.log(REFUSED + why)
        return any(mark in why for mark in CREDENTIAL_REFUSALS)

    def tick(self, now: float) -> Action:
        if self.check_refusal():
            # A token the pool will not take (wrong key or issuer, an identity it does not
            # admit) never will: waiting would only spend the machine's time.
            return self.shutdown("the pool will not have this pilot (see above)", fatal=True)
        code = self.master_exit()
        if code is not None:
            if now >= self.state.boot + self.payload.lifetime:
                # Its own DAEMON_SHUTDOWN_FAST at GLIDEIN_ToDie: the expected end.
                return self.shutdown("hard lifetime reached (condor_master already stopped)")
            if code == 0 and self.state.idle_since is not None:
                # The startd's own STARTD_NOCLAIM_SHUTDOWN (the idle timeout) counts from
                # the slot's release, up to a look before idle_since: it may end first, and
                # its master with it. An orderly end of an idle pilot, not a failure.
                return self.shutdown(
                    f"idle for {int(now - self.state.idle_since)}s: the startd left by itself "
                    "and condor_master with it (status 0)"
                )
            return self.shutdown(f"condor_master exited (status {code})", fatal=True)
        try:
            busy: bool | None = self.busy()
        except QueryError as exc:
            busy = None
            if not self.started:
                if now - self.state.boot >= self.startup_timeout:
                    return self.shutdown(
                        f"the startd did not answer within {int(self.startup_timeout)}s "
                        f"of boot: {exc}",
                        fatal=True,
                    )
                if now >= self.state.boot + self.payload.lifetime:
                    return self.shutdown("hard lifetime reached")
                if not self.waiting:
                    self.waiting = True
                    self.log(f"waiting for the startd (up to {int(self.startup_timeout)}s): {exc}")
                return Action.NONE
            self.failures += 1
            if self.failures >= self.max_failures:
                return self.shutdown(
                    f"the startd did not answer {self.failures} times in a row, taken for "
                    f"dead: {exc}",
                    fatal=True,
                )
            self.log(
                f"cannot read the startd's slots ({self.failures} of {self.max_failures} "
                f"failures allowed in a row), state unknown: {exc}"
            )
        if busy is not None:
            if not self.started:
                self.started = True
                self.log(f"startd up at {self.address}")
            self.failures = 0
            if busy:
                self.state.idle_since = None
            elif self.state.idle_since is None:
                self.state.idle_since = now
        # Unknown: idle_since stays as it was, so neither a job's end nor its start is
        # made up; the lifetime still counts.
        action, why = decide(self.payload, self.state, now)
        if action is Action.RETIRE:
            # Nothing to send: START turned false at GLIDEIN_ToRetire by itself (the
            # startd's own configuration), so no new job starts and the running ones go
            # on until they end or GLIDEIN_ToDie, as GlideinWMS's glideins do. Not
            # condor_drain: on HTCondor 25.14 `condor_drain -graceful` evicted the running
            # job at once ("badput caused by draining"), even with MAXJOBRETIREMENTTIME
            # set to the retire window.
            self.log(f"{why}: no new jobs, the running ones may finish")
            self.state.retiring = True
        elif action is Action.SHUTDOWN:
            return self.shutdown(why)
        return action

    def shutdown(self, why: str, fatal: bool = False) -> Action:
        """Stop HTCondor, then run the shutdown command whatever happened before it."""
        self.fatal = self.fatal or fatal
        self.log(f"FATAL: {why}; shutting down" if fatal else f"shutting down: {why}")
        try:
            self.runner(["condor_off", "-graceful", "-daemon", "master"])
        except COMMAND_ERRORS as exc:
            self.log(f"condor_off failed, powering off anyway: {_describe(exc)}")
        # The last moment anything on the machine can still be said (the power-off
        # ends it): the log ends go to the console.
        try:
            self.before_shutdown()
        except OSError as exc:
            self.log(f"could not print the log ends: {exc}")
        try:
            self.runner(self.shutdown_command)
            self.powered_off = True
        except COMMAND_ERRORS as exc:
            self.log(f"FATAL: {' '.join(self.shutdown_command)} failed: {_describe(exc)}")
            self.powered_off = False
        return Action.SHUTDOWN


def _describe(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        # HTCondor's tools explain over several lines (what failed, then why): keep them all.
        detail = " / ".join(
            line.strip() for line in (exc.stderr or exc.stdout or "").splitlines() if line.strip()
        )[:400]
        cmd = exc.cmd[0] if isinstance(exc.cmd, list | tuple) and exc.cmd else exc.cmd
        return f"{cmd} exited {exc.returncode}" + (f": {detail}" if detail else "")
    if isinstance(exc, subprocess.TimeoutExpired):
        cmd = exc.cmd[0] if isinstance(exc.cmd, list | tuple) and exc.cmd else exc.cmd
        return f"{cmd} did not finish within {exc.timeout:g}s"
    return str(exc)
