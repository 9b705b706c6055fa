"""``python -m glidein_devkit.node build``: build (once per machine) what the node tier
needs: the node's binaries and the project's images. ``make test`` runs it before pytest so
that no test's time goes to a build. On a machine that cannot run a node it says what is
missing and exits 0 (the node tier then skips, naming the same), except under CI."""

from __future__ import annotations

import os
import sys
import time

from glidein_devkit.node import assets
from glidein_devkit.node.images import ImagesUnavailable, ensure_images
from glidein_devkit.node.node import NodeUnavailable, check_machine


def main(argv: list[str]) -> int:
    if argv[1:] != ["build"]:
        print("usage: python -m glidein_devkit.node build", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        check_machine()
        built = assets.ensure()
        images = ensure_images()
    except (NodeUnavailable, ImagesUnavailable) as exc:
        print(f"[node] not on this machine: {exc}", flush=True)
        return 1 if os.environ.get("CI") else 0
    info = built.build_info()
    print(
        f"[node] binaries ({info['build_seconds']}s when built): {built.directory}\n"
        f"[node] images: {images.summary()}\n"
        f"[node] ready in {time.monotonic() - started:.1f}s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
