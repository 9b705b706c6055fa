"""The ``glidein-operator`` command."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console

from glidein_operator import __version__

app = typer.Typer(
    help="Grow HTCondor pools on demand across clouds and grids.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
crds_app = typer.Typer(help="The CustomResourceDefinitions, generated from the models.")
cp_app = typer.Typer(
    help="A real local control plane (etcd + kube-apiserver) for tests and demos "
    "(from the development kit)."
)
app.add_typer(crds_app, name="crds")
app.add_typer(cp_app, name="controlplane")

console = Console(stderr=True)

DEVKIT_MISSING = "install the development kit: make install (pip install -e devkit)"


def devkit(module: str) -> ModuleType:
    """A module of the development kit (``glidein_devkit``: the demo, the local control
    plane), looked up when a command needs it. The product never imports the kit (the
    import contracts in pyproject.toml hold that): the operator image does not ship it.
    Exit 2, saying how to install it, where it is missing."""
    try:
        return importlib.import_module(f"glidein_devkit.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != "glidein_devkit":
            raise
        console.print(f"[red]error:[/red] {DEVKIT_MISSING}")
        raise typer.Exit(2) from None


@app.command()
def version() -> None:
    """Print the operator's version."""
    print(__version__)


@app.command("plan")
def plan_cmd(
    jobs: Annotated[
        Path, typer.Option("--jobs", "-j", help="Idle jobs: condor_q -json output or ClassAd text.")
    ],
    resources: Annotated[
        list[Path] | None,
        typer.Argument(help="Resource YAML files or folders (e.g. examples/)."),
    ] = None,
    request: Annotated[str | None, typer.Option(help="Only this GlideinRequest.")] = None,
    no_ramp: Annotated[
        bool, typer.Option("--no-ramp", help="Ignore slow start (show the steady-state plan).")
    ] = False,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            help="Plan against this live cluster instead of files: its resources, the pilots "
            "its clouds list now (read only) and each request's budget state.",
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="With --kubeconfig: only requests in it."),
    ] = None,
) -> None:
    """Dry run: what would start where for these jobs, and which limit bound each number."""
    from glidein_operator.cli_plan import dry_run_files, read_jobs, render
    from glidein_operator.provisioning.planner import Ramp

    try:
        if kubeconfig is not None:
            if resources or no_ramp:
                raise ValueError(
                    "--kubeconfig plans what the cluster holds, as the operator would: "
                    "give no resource files, nor --no-ramp"
                )
            from glidein_operator.controller import liveplan
            from glidein_operator.controller.runtime import Runtime, Settings

            rt = Runtime(
                settings=Settings(),
                pool_factory=lambda _c, _t: None,  # type: ignore[arg-type,return-value]
                api=liveplan.client_for(str(kubeconfig)),
            )
            runs = asyncio.run(
                liveplan.live_plans(rt, read_jobs(jobs), namespace=namespace, request_name=request)
            )
        elif not resources:
            raise ValueError("give resource files or folders, or --kubeconfig")
        else:
            ramp = Ramp(initial=10**9) if no_ramp else None
            runs = dry_run_files(resources, jobs, request, ramp=ramp)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    # Wide enough for every column when piped to a file or a pager.
    out = Console(width=None if sys.stdout.isatty() else 200)
    for run in runs:
        render(out, run)


@app.command("check")
def check_cmd(
    request: Annotated[str, typer.Argument(help="The GlideinRequest's name.")],
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Its namespace (default: the kubeconfig's)."),
    ] = None,
) -> None:
    """Does this request's setup work? Read only (launches nothing, writes nothing): one
    line per check, ok / FAIL / skip, each failure with its fix. Exit 1 when one fails."""
    from glidein_operator.controller import check

    rows = check.run(namespace or check.default_namespace(), request)
    for line in check.render(rows):
        print(line)
    if not check.passed(rows):
        raise typer.Exit(1)


@app.command()
def run(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only these namespaces (default: all)."),
    ] = None,
    liveness: Annotated[
        str | None,
        typer.Option(
            help="kopf's own liveness endpoint, e.g. http://0.0.0.0:8081/healthz: served by "
            "the active replica only (kept for compatibility; see --health-probe-bind-address)."
        ),
    ] = None,
    health_probe_bind_address: Annotated[
        str | None,
        typer.Option(
            help="Serve /healthz and /readyz at HOST:PORT (':8080': every interface), in every "
            "replica, active or standby (controller/health.py)."
        ),
    ] = None,
    standalone: Annotated[
        bool,
        typer.Option(help="Accepted for compatibility: without --lease every run is standalone."),
    ] = True,
    lease: Annotated[
        str | None,
        typer.Option(
            help="Leader election by this coordination.k8s.io Lease in GLIDEIN_NAMESPACE: "
            "one replica acts, the others stand by (implies no kopf peering)."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at DEBUG (GLIDEIN_LOG_LEVEL otherwise).")
    ] = False,
) -> None:
    """Run the operator (kopf) against the cluster in KUBECONFIG or in-cluster config."""
    import asyncio

    import kopf

    if verbose:  # before the settings are first read (importing the handlers reads them)
        os.environ["GLIDEIN_LOG_LEVEL"] = "DEBUG"
    import glidein_operator.controller.handlers  # noqa: F401  (registers the handlers)

    del standalone  # one replica acts: alone, or elected by --lease

    from glidein_operator.controller import logs, runtime

    # Again at kopf's startup (controller/handlers.py), where kopf's own CLI also lands.
    settings = runtime.get().settings
    logs.configure(settings.log_level, settings.log_format)

    async def operator(stop: asyncio.Event | None = None) -> None:
        await kopf.operator(
            clusterwide=not namespace,
            namespaces=namespace or [],
            liveness_endpoint=liveness,
            # Never kopf's peering (it paused every replica of a Deployment: see
            # controller/leader.py); a peering name would make kopf wait for its CRDs.
            standalone=True,
            peering_name=None,
            stop_flag=stop,
        )

    from glidein_operator.controller import leader, metrics, webhook

    rt = runtime.get()
    if rt.settings.metrics_port:  # every replica's, a standby's too (kopf's startup: no-op)
        metrics.serve(rt.settings.metrics_port, rt.registry)
    if lease is None:
        asyncio.run(leader.run_replica(operator, None, probe_address=health_probe_bind_address))
        return
    from kubernetes import client as k8s

    if rt.keeper.namespace is None:
        console.print("[red]error:[/red] --lease needs GLIDEIN_NAMESPACE (where the Lease lives)")
        raise typer.Exit(2)
    times = leader.LeaseTimes(
        rt.settings.lease_duration, rt.settings.lease_renew_deadline, rt.settings.lease_retry
    )
    elected = leader.Lease(
        k8s.CoordinationV1Api(rt.client),  # the operator's own client, not a second one
        lease,
        rt.keeper.namespace,
        leader.identity(),
        times,
    )
    server = None
    if rt.settings.webhook_port and not rt.settings.webhook_self_signed:
        server = webhook.server(rt.settings.webhook_port, rt.settings.webhook_cert_dir, None, False)
    asyncio.run(
        leader.run_replica(
            operator,
            elected,
            probe_address=health_probe_bind_address,
            standby_webhook=(lambda: webhook.standby(server)) if server else None,
        )
    )


@app.command()
def teardown(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Delete the GlideinRequests of this namespace."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every namespace (say it explicitly).")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for them to be gone (Helm waits 300).")
    ] = 240,
) -> None:
    """Empty the clouds on purpose: delete the GlideinRequests of these namespaces and wait
    while the (running) operator terminates their pilots. Uninstalling the operator never
    does this by itself."""
    from kubernetes import client as k8s

    from glidein_operator.controller.runtime import api_client

    if not namespace and not all_namespaces:
        console.print("[red]error:[/red] name the namespaces (--namespace), or --all-namespaces")
        raise typer.Exit(2)
    api = k8s.CustomObjectsApi(api_client())
    group, version, plural = "glidein.dev", "v1alpha1", "glideinrequests"

    def requests() -> list[dict[str, Any]]:
        if all_namespaces:
            return list(api.list_cluster_custom_object(group, version, plural)["items"])
        return [
            item
            for ns in namespace or []
            for item in api.list_namespaced_custom_object(group, version, ns, plural)["items"]
        ]

    for item in requests():
        meta = item["metadata"]
        try:
            api.delete_namespaced_custom_object(
                group, version, meta["namespace"], plural, meta["name"]
            )
        except k8s.ApiException as exc:
            # Gone between the listing and the delete (a request already ending, a retried
            # uninstall hook): what teardown wants, not a failure.
            if exc.status != 404:
                raise
        console.print(f"deleting GlideinRequest {meta['namespace']}/{meta['name']}")
    deadline = time.monotonic() + timeout
    while left := requests():
        if time.monotonic() > deadline:
            names = ", ".join(f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in left)
            console.print(f"[red]still present after {timeout:.0f}s:[/red] {names}")
            raise typer.Exit(1)
        time.sleep(2)
    console.print("those GlideinRequests are gone, and with them their pilots")


@app.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 180.0,
    waves: Annotated[int, typer.Option(help="Waves of jobs to submit.")] = 2,
    simulated: Annotated[
        bool | None,
        typer.Option(
            "--simulated/--real",
            help="Simulated pool, or real HTCondor (default: real when HTCondor is found).",
        ),
    ] = None,
) -> None:
    """The operator on a local control plane and an EC2 test server, with a real HTCondor
    pool and real pilots when HTCondor is found, a simulated pool otherwise (needs the
    development kit)."""
    summary = devkit("demo").run(timeout=timeout, waves=waves, simulated=simulated)
    if summary["idle_jobs_left"] or summary["instances_left"] or summary["key_pairs_left"]:
        raise typer.Exit(1)


@crds_app.command("generate")
def crds_generate(
    out: Annotated[
        list[Path] | None,
        typer.Option(help="Folder(s) to write into (default: crds/ and the chart's crds/)."),
    ] = None,
    check: Annotated[bool, typer.Option(help="Write nothing; fail if a folder is stale.")] = False,
) -> None:
    """Write the CRD YAML from the pydantic models (or check it is current)."""
    from glidein_operator.api import crdgen

    targets = out or list(crdgen.TARGETS)
    if check:
        stale = [f"{t}/{name}" for t in targets for name in crdgen.stale(t)]
        if stale:
            console.print(
                f"[red]stale:[/red] {', '.join(stale)}; run `glidein-operator crds generate`"
            )
            raise typer.Exit(1)
        console.print(f"{', '.join(map(str, targets))}: current")
        return
    for target in targets:
        for path in crdgen.write(target):
            console.print(f"wrote {path}")


@cp_app.command("build")
def cp_build() -> None:
    """Find, or build from upstream source with Go, etcd, kube-apiserver and helm (once per machine)."""
    assets = devkit("controlplane.assets")
    started = time.monotonic()
    found = assets.ensure()
    console.print(f"control plane binaries: {found.origin} ({time.monotonic() - started:.1f}s)")
    started = time.monotonic()
    helm = assets.ensure_helm()
    console.print(f"helm: {helm} ({time.monotonic() - started:.1f}s)")


@cp_app.command("up")
def cp_up(
    directory: Annotated[
        Path, typer.Option(help="Where certificates, data, logs and the kubeconfig go.")
    ] = Path(".cache/controlplane"),
    crds: Annotated[
        bool, typer.Option(help="Install the CRDs once the API server is ready.")
    ] = True,
) -> None:
    """Start a local control plane and keep it running until Ctrl-C."""
    cluster, kube = devkit("controlplane.cluster"), devkit("kube")
    cp = cluster.LocalControlPlane(directory=directory.resolve()).start()
    try:
        if crds:
            kube.install_crds(cp.kubeconfig)
        console.print(f"control plane ready in {cp.startup_seconds:.1f}s")
        print(json.dumps({"kubeconfig": str(cp.kubeconfig), "server": cp.server}), flush=True)
        console.print(f"export KUBECONFIG={cp.kubeconfig}    # Ctrl-C stops it")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cp.stop()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
