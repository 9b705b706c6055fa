"""Idle timeout and hard lifetime, enforced from inside: drain, then shut down.

``decide`` is pure (time comes in); ``Supervisor`` applies it through the HTCondor
commands and the machine's power-off, both replaceable in tests.
"""

from __future__ import annotations

import enum
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from glidein_operator.pilot.payload import Payload


class Action(enum.StrEnum):
    NONE = "none"
    DRAIN = "drain"
    SHUTDOWN = "shutdown"


@dataclass
class State:
    boot: float
    idle_since: float | None  # None while a job runs
    draining: bool = False


def decide(payload: Payload, state: State, now: float) -> tuple[Action, str]:
    if now >= state.boot + payload.lifetime:
        return Action.SHUTDOWN, "hard lifetime reached"
    if state.draining and state.idle_since is not None:
        return Action.SHUTDOWN, "drained: no job left"
    if state.idle_since is not None and now - state.idle_since >= payload.idle_timeout:
        return Action.SHUTDOWN, f"idle for {int(now - state.idle_since)}s"
    if not state.draining and now >= state.boot + payload.lifetime - payload.retire_before_end:
        return Action.DRAIN, "retiring before the end of the lifetime"
    return Action.NONE, ""


Runner = Callable[[Sequence[str]], str]


def run(cmd: Sequence[str]) -> str:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, timeout=60).stdout


class Supervisor:
    def __init__(
        self,
        payload: Payload,
        state: State,
        *,
        runner: Runner = run,
        log: Callable[[str], None] = print,
        shutdown_command: Sequence[str] = ("poweroff",),
    ) -> None:
        self.payload, self.state, self.runner, self.log = payload, state, runner, log
        self.shutdown_command = tuple(shutdown_command)

    def claimed(self) -> bool:
        out = self.runner(
            ["condor_status", "-direct", "localhost", "-af", "Cpus", "TotalSlotCpus"]
        ).split()
        if len(out) < 2:
            return False
        return int(out[0]) < int(out[1])

    def tick(self, now: float) -> Action:
        if self.claimed():
            self.state.idle_since = None
        elif self.state.idle_since is None:
            self.state.idle_since = now
        action, why = decide(self.payload, self.state, now)
        if action is Action.DRAIN:
            self.log(f"draining: {why}")
            self.runner(
                ["condor_drain", "-graceful", "-start", "False", "-reason", why, "localhost"]
            )
            self.state.draining = True
        elif action is Action.SHUTDOWN:
            self.log(f"shutting down: {why}")
            self.runner(["condor_off", "-graceful", "-daemon", "master"])
            self.runner(self.shutdown_command)
        return action
