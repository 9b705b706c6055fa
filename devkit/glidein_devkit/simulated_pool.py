"""The operator on a simulated pool, as a process of its own.

``python -m glidein_devkit.simulated_pool run ARGS`` is ``glidein-operator run ARGS`` with
every pool read from the PoolServer at ``GLIDEIN_POOL_URL`` (pool_server.py: a FakePool
served over HTTP by the test's process) instead of real collectors and schedds. The
product's runtime takes its pool factory by injection: this module builds the Runtime
with its own factory and installs it before the command runs, so the product never
imports a pool double. For tests that run the operator as a separate process, to SIGKILL
it (tests/integration/process_world.py).
"""

from __future__ import annotations

import os
import sys

from glidein_devkit.pool_server import HttpPool
from glidein_operator.controller import runtime

# The option, beside the operator's own GLIDEIN_* settings (controller/runtime.py), which
# no longer know of it.
POOL_URL = "GLIDEIN_POOL_URL"


def simulated_runtime(url: str, settings: runtime.Settings | None = None) -> runtime.Runtime:
    """A Runtime whose every pool, whatever its collector and token, is the one at ``url``."""
    return runtime.Runtime(
        settings=settings or runtime.Settings(),
        pool_factory=lambda _collector, _token: HttpPool(url),
    )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "-v" in args or "--verbose" in args:  # the settings are read here, before `run` sees it
        os.environ["GLIDEIN_LOG_LEVEL"] = "DEBUG"
    url = os.environ.get(POOL_URL)
    if not url:
        raise SystemExit(f"{POOL_URL} is not set: the URL of the PoolServer (pool_server.py)")
    runtime.install(simulated_runtime(url))

    from glidein_operator.cli import app

    app(args=args, prog_name="glidein-operator")


if __name__ == "__main__":
    main()
