"""``/healthz`` and ``/readyz``: served by every replica, active or standby, from the
event loop that runs its operator and its Lease (``glidein-operator run
--health-probe-bind-address``; the chart's probes).

kopf's own liveness endpoint (``run --liveness``, still accepted) is served only once
kopf runs, which with ``--lease`` is the active replica alone: a standby never answered
it, and the chart's livenessProbe killed every standby over and over.

``/healthz``: the process's event loop answers. The handler runs on that loop, so a loop
blocked (a call that should have gone to a thread) answers nothing and the kubelet
restarts the process; nothing else is checked, so a slow cloud or an unreachable API
server never restarts a replica (the Lease handles that: leader.py).

``/readyz``:

* Active (the Lease's holder, or a run without ``--lease``): kopf has started and every
  index is filled: kopf runs no handler before that, and ``indices_filled`` is the first
  it runs (handlers.py); 503 before, and once the replica lost the Lease and is stopping.
* Standby: Ready while it reads the Lease (it did so within a lease period): it is a
  healthy hot spare, and says so. Ready rather than not, because

  - the PodDisruptionBudget (minAvailable: 1) counts Ready pods: were a standby never
    Ready, a drain of the active replica's node could never evict it, and the spare
    meant to take over would be the reason nothing can move;
  - ``helm install --wait``, ``kubectl rollout status`` and GitOps health checks wait
    for every replica to be Ready: they would wait for ever on a standby;
  - what readiness routes is served by a standby too: the metrics Service scrapes every
    replica (a standby's request series are empty), and the admission webhook's Service
    reaches standbys, which answer reviews themselves (webhook.standby);
  - a standby that cannot read the Lease could not take over: that one is not Ready,
    and shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Health:
    clock: Callable[[], float] = field(default=time.monotonic)
    # "starting", "standby" (waiting for the Lease) or "active" (running kopf).
    role: str = "starting"
    indexed: bool = False
    stopping: bool = False
    lease_read: float | None = None  # when a standby last read the Lease
    lease_period: float = 15.0

    def standing_by(self, lease_period: float) -> None:
        self.role, self.lease_period = "standby", lease_period

    def lease_checked(self) -> None:
        self.lease_read = self.clock()

    def acting(self) -> None:
        self.role = "active"

    def indices_filled(self) -> None:
        self.indexed = True

    def readiness(self) -> tuple[bool, str]:
        if self.role == "standby":
            if self.lease_read is None:
                return False, "standby: the Lease not read yet"
            age = self.clock() - self.lease_read
            if age > self.lease_period:
                return False, f"standby: the Lease not read for {age:.0f}s"
            return True, "standby: waiting for the Lease"
        if self.role == "active":
            if self.stopping:
                return False, "stopping: the Lease is lost"
            if not self.indexed:
                return False, "starting: kopf is listing the resources"
            return True, "active"
        return False, "starting"


STATE = Health()


async def serve(address: str, state: Health = STATE) -> web.AppRunner:
    """Serve the probes at ``address`` (``HOST:PORT``, ``:PORT`` for every interface) on
    the running loop, until the returned runner is cleaned up."""
    host, _, port = address.rpartition(":")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        ready, why = state.readiness()
        return web.Response(text=why + "\n", status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]") or None, int(port)).start()
    return runner
