"""The pilot side: payload round trip, every source of it, the HTCondor configuration,
and lifetime/idle enforcement with injected time and fake HTCondor commands."""

from __future__ import annotations

import ast
import base64
import gzip
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import threading
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import classad2
import pytest
import yaml

from glidein_devkit.boot import Imds
from glidein_devkit.boot_openstack import NovaMetadata
from glidein_operator.api.objects import parse
from glidein_operator.condor import pilots
from glidein_operator.credentials import idtokens, payloads
from glidein_operator.pilot import condor_config, lifecycle, slot, sources
from glidein_operator.pilot.payload import LIMITS, Payload, PayloadError, decode, encode
from glidein_operator.provisioning.matching import STARTD_OWN, machine_ad
from tests.malformed_cases import EXAMPLES, example

NOW = 1_800_000_000
POOL_KEY = bytes(range(32))


def _launch(entry_name: str, itype_name: str | None = None) -> Payload:
    """The payload the operator builds for one launch at an example entry."""
    req = parse(example("GlideinRequest", "cms-production")).spec
    entry = parse(example("CloudEntry", entry_name)).spec
    image = parse(example("VMImage", entry.vm_image)).spec if entry.vm_image else None
    itype = entry.instance_type(itype_name) if itype_name else entry.instance_types[0]
    assert itype is not None
    return payloads.build(
        request="cms/cms-production",
        request_uid="uid-1",
        spec=req,
        entry=entry_name,  # type: ignore[arg-type]
        entry_spec=entry,
        itype=itype,
        image=image,
        batch="abcd1234-hlt-7",
        pool_signing_key=POOL_KEY,  # type: ignore[arg-type]
        premade_token=None,
        now=NOW,
    )


def _payload(**kw: object) -> Payload:
    return replace(_launch("hlt-openstack"), **kw)  # type: ignore[arg-type]


# --- payload ---------------------------------------------------------------------------


def test_payload_round_trips_and_fits_ec2() -> None:
    p = _payload()
    data = encode(p, LIMITS["ec2"])
    assert len(data) < LIMITS["ec2"]
    assert decode(data, NOW + 10) == p
    assert p.lifetime == 48 * 3600
    assert p.attributes == {"GLIDEIN_CMSSite": '"T2_CH_CERN_HLT"'}


def test_token_is_an_htcondor_idtoken_scoped_to_the_batch() -> None:
    p = _payload()
    claims = idtokens.claims(p.token)
    assert claims["sub"] == "glidein-abcd1234-hlt-7@cms-pool.example.org"
    # The issuer is the pool's TRUST_DOMAIN verbatim: here the collector string, port kept.
    assert claims["iss"] == "cms-pool.example.org:9618"
    assert p.trust_domain == "cms-pool.example.org:9618"
    assert claims["scope"] == idtokens.PILOT_SCOPE
    assert claims["exp"] == NOW + p.lifetime + payloads.BOOT_GRACE
    assert idtokens.verify(p.token, POOL_KEY)
    assert not idtokens.verify(p.token, b"another pool's key")


def test_too_large_payload_is_refused_before_launch() -> None:
    big = _payload(extra_config={f"K{i}": os.urandom(64).hex() for i in range(200)})
    with pytest.raises(PayloadError, match="over the limit of 16384"):
        encode(big, LIMITS["ec2"])


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"", "empty payload"),
        (lambda d: b"#cloud-config\nruncmd: []\n", "not a glidein payload"),
        (lambda d: d.replace(b"v1 ", b"v2 ", 1), "version 2 is not supported"),
        (lambda d: d[:-40] + b"\n", "checksum mismatch"),
    ],
)
def test_malformed_payload_is_rejected_clearly(mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PayloadError, match=message):
        decode(mangle(encode(_payload())), NOW)


def test_expired_and_incomplete_payloads_are_rejected() -> None:
    with pytest.raises(PayloadError, match="expired"):
        decode(encode(_payload()), NOW + 10**7)
    with pytest.raises(PayloadError, match="lacks collector"):
        decode(encode(_payload(collector="")), NOW)
    with pytest.raises(PayloadError, match="not a JWT"):
        decode(encode(_payload(token="opaque")), NOW)


def test_pilot_package_uses_only_the_standard_library() -> None:
    allowed_prefix = "glidein_operator.pilot"
    root = Path(__file__).resolve().parents[2] / "operator/glidein_operator/pilot"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert (
                    name.startswith(allowed_prefix)
                    or top in sys.stdlib_module_names
                    or top == "__future__"
                ), f"{path.name} imports {name}"


# --- sources ---------------------------------------------------------------------------


@pytest.fixture
def imds() -> Iterator[str]:
    """EC2's instance metadata (IMDSv2: token required) of the fourth instance of a batch,
    on loopback."""
    server = Imds("i-0123456789abcdef0", 3, encode(_payload()))
    yield server.url
    server.stop()


@pytest.fixture
def nova_metadata() -> Iterator[str]:
    """Nova's metadata service of the fifth server of a batch, on loopback."""
    meta = {"name": "glidein-abcd1234-hlt-7-5", "meta": {"glidein.dev/batch": "abcd1234-hlt-7"}}
    files = {"user_data": encode(_payload()), "meta_data.json": json.dumps(meta).encode()}
    server = NovaMetadata(files)
    yield server.url
    server.stop()


def test_ec2_imdsv2(imds: str) -> None:
    ctx = sources.from_ec2(imds)
    assert ctx.resolve_pilot_id(decode(ctx.raw, NOW).batch) == "abcd1234-hlt-7-3"


@pytest.mark.parametrize("refusal", [404, 405, 403])
def test_ec2_falls_back_to_imdsv1_where_the_token_put_is_refused(refusal: int) -> None:
    # An older EC2-compatible cloud: no session tokens, the PUT refused as such clouds do.
    server = Imds("i-0123456789abcdef0", 3, encode(_payload()), tokens="absent", refusal=refusal)
    try:
        ctx = sources.from_ec2(server.url)
        assert ctx.source == "ec2-imdsv1"
        assert ctx.resolve_pilot_id(decode(ctx.raw, NOW).batch) == "abcd1234-hlt-7-3"
        # What the pilot's boot runs: every other source absent.
        found = sources.discover({}, server.url, context_paths=(), config_drives=())
        assert (found.source, found.index, found.raw) == ("ec2-imdsv1", 3, ctx.raw)
        with pytest.raises(urllib.error.HTTPError):
            sources.from_ec2(server.url, v1_fallback=False)
    finally:
        server.stop()


def test_ec2_uses_imdsv2_where_it_can_and_never_v1_where_tokens_are_required(imds: str) -> None:
    assert sources.from_ec2(imds).source == "ec2-imdsv2"
    assert sources.discover({}, imds, context_paths=(), config_drives=()).source == "ec2-imdsv2"
    with pytest.raises(urllib.error.HTTPError) as err:
        sources.from_ec2_imdsv1(imds)
    assert err.value.code == 401


def test_a_failing_token_put_that_is_no_refusal_is_not_taken_for_imdsv1() -> None:
    # A 5xx is a broken metadata service, not an old one: no silent downgrade.
    class Broken(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            sources.from_ec2(f"http://127.0.0.1:{server.server_address[1]}")
        assert err.value.code == 503
    finally:
        server.shutdown()
        server.server_close()


def test_openstack_metadata_service(nova_metadata: str) -> None:
    ctx = sources.from_openstack_metadata(nova_metadata)
    # glidein-<batch>-5: Nova counts from 1; the batch key itself ends in a number too.
    assert ctx.resolve_pilot_id(decode(ctx.raw, NOW).batch) == "abcd1234-hlt-7-4"


def test_openstack_config_drive(tmp_path: Path) -> None:
    latest = tmp_path / "openstack/latest"
    latest.mkdir(parents=True)
    (latest / "user_data").write_bytes(encode(_payload()))
    (latest / "meta_data.json").write_text(json.dumps({"name": "glidein-abcd1234-hlt-7"}))
    ctx = sources.discover(
        env={}, context_paths=(), config_drives=(tmp_path,), metadata_url="http://127.0.0.1:9"
    )
    assert ctx.source == "openstack-config-drive"
    assert ctx.resolve_pilot_id("abcd1234-hlt-7") == "abcd1234-hlt-7-0"


def test_opennebula_context_disk(tmp_path: Path) -> None:
    ctx_file = tmp_path / "context.sh"
    data = base64.b64encode(encode(_payload())).decode()
    ctx_file.write_text(
        f"# Context variables generated by OpenNebula\nDISK_ID='1'\nNETWORK='YES'\n"
        f"USERDATA_ENCODING='base64'\nUSER_DATA='{data}'\nGLIDEIN_PILOT_ID='abcd1234-hlt-7-2'\n"
    )
    ctx = sources.discover(env={}, context_paths=(ctx_file,), config_drives=())
    assert ctx.source == "opennebula-context"
    assert ctx.pilot_id == "abcd1234-hlt-7-2"
    assert decode(ctx.raw, NOW).entry == "hlt-openstack"


def test_pod_and_grid_environment(tmp_path: Path) -> None:
    f = tmp_path / "user-data"
    f.write_bytes(encode(_payload()))
    pod = sources.discover(
        env={"GLIDEIN_PAYLOAD_FILE": str(f), "GLIDEIN_PILOT_ID": "abcd1234-hlt-7-0"}
    )
    assert pod.source == "pod"
    grid = sources.discover(
        env={
            "GLIDEIN_PAYLOAD": base64.b64encode(f.read_bytes()).decode(),
            "GLIDEIN_PILOT_ID": "abcd1234-hlt-7-9",
        }
    )
    assert grid.source == "grid"
    assert grid.pilot_id == "abcd1234-hlt-7-9"


def test_no_source_says_what_was_tried() -> None:
    with pytest.raises(sources.SourceError, match="no payload found"):
        sources.discover(
            env={}, context_paths=(), config_drives=(), metadata_url="http://127.0.0.1:9"
        )


# --- configuration ----------------------------------------------------------------------


def _config(text: str) -> dict[str, str]:
    """The knobs of a rendered configuration, as HTCondor reads them (the last one wins)."""
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#") and " = " in line:
            name, _, value = line.partition(" = ")
            out[name.strip()] = value.strip()
    return out


def test_condor_configuration(tmp_path: Path) -> None:
    p = _payload()
    path = condor_config.write(
        tmp_path / "config.d",
        tmp_path / "tokens.d",
        p,
        "abcd1234-hlt-7-3",
        NOW,
        condor_config.Machine(cpus=8, memory_mb=16000),
    )
    text = path.read_text()
    assert "CONDOR_HOST = cms-pool.example.org:9618" in text
    assert 'GlideinPilotId = "abcd1234-hlt-7-3"' in text
    assert f"GLIDEIN_ToRetire = {NOW + 48 * 3600 - 2 * 3600}" in text
    assert f"GLIDEIN_ToDie = {NOW + 48 * 3600}" in text
    assert "START = (true) && (time() < GLIDEIN_ToRetire)" in text
    assert "SLOT_TYPE_1_PARTITIONABLE = True" in text
    assert "STARTD_NOCLAIM_SHUTDOWN = 1200" in text
    assert 'GLIDEIN_CMSSite = "T2_CH_CERN_HLT"' in text
    # The pilot shows the pool only its token; its own commands prove themselves with FS.
    assert "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS" in text
    assert "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS" in text
    assert "TOOL.SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS" in text
    token = tmp_path / "tokens.d/glidein-pilot.token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tokens.d").stat().st_mode) == 0o700
    assert p.token not in text


def test_master_ad_carries_what_its_shutdown_expression_reads() -> None:
    knobs = _config(
        condor_config.render(_payload(), "p-0", NOW, condor_config.Machine(8, 16000), Path("/t"))
    )
    read = set(re.findall(r"[A-Za-z_]\w*", knobs["MASTER.DAEMON_SHUTDOWN_FAST"])) - {"time"}
    assert read == {"GLIDEIN_ToDie"}
    assert knobs["MASTER_ATTRS"].split()[0] == "$(MASTER_ATTRS)"
    assert read <= set(knobs["MASTER_ATTRS"].split()[1:])
    assert knobs["GLIDEIN_ToDie"] == str(NOW + 48 * 3600)


def test_glideinwms_attributes_are_advertised() -> None:
    p = _launch("aws-us-east-1", "c5.4xlarge")
    knobs = _config(
        condor_config.render(p, "p-0", NOW, condor_config.Machine(16, 32768), Path("/t"))
    )
    advertised = set(knobs["STARTD_ATTRS"].split()[1:])
    expected = {
        "GLIDEIN_Factory": '"glidein-operator"',
        "GLIDEIN_Name": '"cms/cms-production"',
        "GLIDEIN_Entry_Name": '"aws-us-east-1"',
        "GLIDEIN_Site": '"T3_US_AWS"',
        "GLIDEIN_ResourceName": '"T3_US_AWS"',
        "GLIDEIN_TrustDomain": '"aws"',
        "GLIDEIN_ResourceType": '"ec2"',
        "GLIDEIN_InstanceType": '"c5.4xlarge"',
        "GLIDEIN_PricePerHour": "0.68",
        "GLIDEIN_CPUS": "16",
        "GLIDEIN_MaxMemMBs": "32768",
        "GLIDEIN_ToRetire": str(NOW + 48 * 3600 - 2 * 3600),
        "GLIDEIN_ToDie": str(NOW + 48 * 3600),
        "GlideinPilotId": '"p-0"',
        "GlideinRequestUid": '"uid-1"',
        "HAS_CVMFS": "true",
        "OpSysName": '"AlmaLinux"',
        "OpSysMajorVer": "9",
    }
    for name, value in expected.items():
        assert knobs[name] == value, name
        assert name in advertised, name


def test_operator_reads_back_the_names_the_pilot_writes() -> None:
    knobs = _config(
        condor_config.render(_payload(), "p-0", NOW, condor_config.Machine(8, 16000), Path("/t"))
    )
    advertised = set(knobs["STARTD_ATTRS"].split()[1:])
    for name in (pilots.PILOT_ID, pilots.PILOT_REQUEST, pilots.PILOT_ENTRY, pilots.PILOT_TO_RETIRE):
        assert name in advertised
        assert name in pilots.STARTD_PROJECTION


def test_entry_attributes_cannot_overwrite_what_the_operator_reads_back() -> None:
    p = _payload(attributes={"GLIDEIN_Entry_Name": '"elsewhere"', "GlideinPilotId": '"x"'})
    knobs = _config(
        condor_config.render(p, "p-0", NOW, condor_config.Machine(8, 16000), Path("/t"))
    )
    assert knobs["GLIDEIN_Entry_Name"] == '"hlt-openstack"'
    assert knobs["GlideinPilotId"] == '"p-0"'


# What the startd measures itself (the planner takes them from the instance type and image).
MEASURED = STARTD_OWN


@pytest.mark.parametrize(
    ("entry_name", "itype_name"),
    [
        (doc["metadata"]["name"], t["name"])
        for doc in yaml.safe_load_all((EXAMPLES / "30-cloudentries.yaml").read_text())
        if doc and doc["kind"] == "CloudEntry"
        for t in doc["spec"]["instanceTypes"]
    ],
)
def test_pilot_advertises_what_the_planner_matched_on(entry_name: str, itype_name: str) -> None:
    """Every attribute of the planner's machine ad that the startd does not measure is in
    the pilot's configuration and startd ad, with the identical ClassAd value."""
    entry = parse(example("CloudEntry", entry_name)).spec
    image = parse(example("VMImage", entry.vm_image)).spec if entry.vm_image else None
    itype = entry.instance_type(itype_name)
    assert itype is not None
    ad = machine_ad(entry_name, entry, itype, image)
    p = decode(encode(_launch(entry_name, itype_name)), NOW)  # as the pilot receives it
    machine = condor_config.Machine(p.cpus, p.memory_mb)
    knobs = _config(condor_config.render(p, "p-0", NOW, machine, Path("/t")))
    advertised = set(knobs["STARTD_ATTRS"].split()[1:])
    names = set(ad.keys()) - MEASURED
    assert {"GLIDEIN_Site", "GLIDEIN_Entry_Name", "GLIDEIN_PricePerHour"} <= names
    for name in names:
        assert name in knobs, name
        assert name in advertised, name
        pilot_side = classad2.ExprTree(knobs[name])
        assert str(pilot_side) == str(ad.lookup(name)), name
        mine, theirs = pilot_side.eval(scope=ad), ad.eval(name)
        assert (type(mine), mine) == (type(theirs), theirs), name


def test_example_job_matches_the_pilot_it_was_planned_for() -> None:
    """The example job needing CVMFS matches a pilot only through the image's provides,
    and the request's matchExpression only through GLIDEIN_Site: the pilot's own ad (its
    configured attributes, plus what its startd measures) must satisfy both, as the
    planner's machine ad did."""
    entry = parse(example("CloudEntry", "aws-us-east-1")).spec
    image = parse(example("VMImage", "glidein-el9-2026.11")).spec
    itype = entry.instance_type("c5.4xlarge")
    assert itype is not None
    request = parse(example("GlideinRequest", "cms-production")).spec
    job = next(
        ad
        for ad in classad2.parseAds((EXAMPLES / "jobs/idle-jobs.classads").read_text())
        if "HAS_CVMFS" in str(ad.lookup("Requirements"))
    )
    match = classad2.ExprTree(request.match_expression)
    job["DESIRED_Sites"] = "T3_US_AWS"

    def matches(machine: classad2.ClassAd) -> bool:
        return bool(
            job["Requirements"].eval(scope=job, target=machine) is True
            and match.eval(scope=machine, target=job) is True
        )

    assert matches(machine_ad("aws-us-east-1", entry, itype, image))
    p = _launch("aws-us-east-1", "c5.4xlarge")
    knobs = _config(
        condor_config.render(p, "p-0", NOW, condor_config.Machine(16, 32768), Path("/t"))
    )
    pilot_ad = classad2.ClassAd({"Arch": "X86_64", "OpSys": "LINUX", "Cpus": 16, "Memory": 32768})
    for name in knobs["STARTD_ATTRS"].split()[1:]:
        pilot_ad[name] = classad2.ExprTree(knobs[name])
    assert matches(pilot_ad)
    del pilot_ad["HAS_CVMFS"]
    assert not matches(pilot_ad)


def test_old_payloads_still_decode() -> None:
    # Exactly the fields an operator before this release wrote.
    before = [
        "batch", "request", "request_uid", "entry", "site", "collector", "token", "not_after",
        "lifetime", "idle_timeout", "retire_before_end", "start_expression", "partitionable",
        "attributes", "extra_config", "version",
    ]  # fmt: skip
    doc = {k: v for k, v in asdict(_payload()).items() if k in before}
    body = base64.b64encode(gzip.compress(json.dumps(doc).encode()))
    old = f"#glidein-payload v1 sha256={hashlib.sha256(body).hexdigest()}\n".encode() + body
    got = decode(old, NOW)
    assert (got.cpus, got.instance_type, got.provides, got.ccb) == (0, "", {}, False)
    knobs = _config(
        condor_config.render(got, "p-0", NOW, condor_config.Machine(2, 4000), Path("/t"))
    )
    assert knobs["GLIDEIN_CPUS"] == "2"  # the slot's, as nothing else is known
    assert "GLIDEIN_InstanceType" not in knobs


@pytest.mark.parametrize(
    ("ccb", "shared_port", "expected"),
    [
        (
            False,
            False,
            {"CCB_ADDRESS": "", "USE_SHARED_PORT": "False", "DAEMON_LIST": "MASTER, STARTD"},
        ),
        (True, False, {"CCB_ADDRESS": "$(COLLECTOR_HOST)", "USE_SHARED_PORT": "False"}),
        (
            False,
            True,
            {
                "USE_SHARED_PORT": "True",
                "SHARED_PORT_PORT": "9618",
                "DAEMON_LIST": "MASTER, STARTD, SHARED_PORT",
            },
        ),
    ],
)
def test_networking_options(ccb: bool, shared_port: bool, expected: dict[str, str]) -> None:
    p = _payload(ccb=ccb, shared_port=shared_port)
    knobs = _config(
        condor_config.render(p, "p-0", NOW, condor_config.Machine(8, 16000), Path("/t"))
    )
    for name, value in expected.items():
        assert knobs[name] == value, name


def test_networking_options_travel_from_the_request() -> None:
    req = parse(example("GlideinRequest", "cms-production"))
    assert (req.spec.pilot.ccb, req.spec.pilot.shared_port) == (False, False)
    spec = req.spec.model_copy(
        update={"pilot": req.spec.pilot.model_copy(update={"ccb": True, "shared_port": True})}
    )
    entry = parse(example("CloudEntry", "hlt-openstack")).spec
    p = payloads.build(
        request="cms/cms-production",
        request_uid="uid-1",
        spec=spec,
        entry="hlt-openstack",  # type: ignore[arg-type]
        entry_spec=entry,
        itype=entry.instance_types[0],
        image=None,
        batch="b",
        pool_signing_key=POOL_KEY,  # type: ignore[arg-type]
        premade_token=None,
        now=NOW,
        factory="op-7",
    )
    assert (p.ccb, p.shared_port, p.factory) == (True, True, "op-7")


# --- slot size ---------------------------------------------------------------------------


def test_slot_is_the_instance_type_not_the_host() -> None:
    p = _launch("aws-us-east-1", "m5.xlarge")  # 4 cores, 16 GiB
    machine, why = slot.smallest(
        [slot.Limit("host", 96, 390_000), slot.instance_type(p), slot.Limit("cgroup")]
    )
    assert machine == condor_config.Machine(cpus=4, memory_mb=16384)
    assert "instance type m5.xlarge 4" in why


def test_slot_never_exceeds_the_host() -> None:
    # A VM's kernel keeps some memory back: MemTotal is below the instance type's figure.
    p = _launch("aws-us-east-1", "m5.xlarge")
    machine, _ = slot.smallest([slot.Limit("host", 4, 15_600), slot.instance_type(p)])
    assert machine == condor_config.Machine(cpus=4, memory_mb=15_600)


def test_host_limits(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16303004 kB\nMemFree:         1000 kB\n")
    got = slot.host(meminfo)
    assert got.memory_mb == 16303004 // 1024
    assert got.cpus is not None
    assert got.cpus >= 1
    assert slot.host(tmp_path / "absent").memory_mb is None


def _cgroup2(root: Path, own: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = root.parent / "proc-self-cgroup"
    proc.write_text(f"0::{own}\n")
    return proc


def test_cgroup_v2_limits_of_a_pod(tmp_path: Path) -> None:
    # Inside its cgroup namespace a container is the root of the hierarchy.
    root = tmp_path / "cg"
    proc = _cgroup2(root, "/", {"cpu.max": "250000 100000\n", "memory.max": "8589934592\n"})
    assert slot.cgroup(root, proc) == slot.Limit("cgroup", 2, 8192)


def test_cgroup_v2_limits_on_any_level_above(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    proc = _cgroup2(
        root,
        "/kubepods/pod1/ctr",
        {
            "kubepods/pod1/cpu.max": "400000 100000\n",
            "kubepods/pod1/memory.max": "max\n",
            "kubepods/pod1/ctr/cpu.max": "max 100000\n",
            "kubepods/pod1/ctr/memory.max": "4294967296\n",
            "kubepods/memory.max": "17179869184\n",
        },
    )
    assert slot.cgroup(root, proc) == slot.Limit("cgroup", 4, 4096)


def test_cgroup_v2_without_limits(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    proc = _cgroup2(root, "/", {"cpu.max": "max 100000\n", "memory.max": "max\n"})
    assert slot.cgroup(root, proc) == slot.Limit("cgroup", None, None)
    # A fractional quota gives whole cores, rounded down, at least one.
    _cgroup2(root, "/", {"cpu.max": "50000 100000\n"})
    assert slot.cgroup(root, proc).cpus == 1


def test_cgroup_v1_limits(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    for rel, text in {
        "cpu/cpu.cfs_quota_us": "300000\n",
        "cpu/cpu.cfs_period_us": "100000\n",
        "memory/memory.limit_in_bytes": "2147483648\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    assert slot.cgroup(root) == slot.Limit("cgroup", 3, 2048)
    (root / "cpu/cpu.cfs_quota_us").write_text("-1\n")
    (root / "memory/memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert slot.cgroup(root) == slot.Limit("cgroup", None, None)
    assert slot.cgroup(tmp_path / "none") == slot.Limit("cgroup", None, None)


def test_batch_slot_of_a_grid_pilot(tmp_path: Path) -> None:
    ad = tmp_path / ".machine.ad"
    ad.write_text(
        'Name = "slot1_3@wn042.example.org"\nTotalCpus = 64\nCpus = 8\n'
        "TotalMemory = 256000\nMemory = 16000\nDetectedMemory = 256000\n"
    )
    assert slot.batch_slot(ad) == slot.Limit("batch slot", 8, 16000)
    assert slot.batch_slot(None) == slot.Limit("batch slot")
    assert slot.batch_slot(tmp_path / "absent") == slot.Limit("batch slot")
    machine, _ = slot.smallest(
        [slot.Limit("host", 64, 256000), slot.instance_type(_payload()), slot.batch_slot(ad)]
    )
    assert machine == condor_config.Machine(cpus=8, memory_mb=16000)


# --- lifecycle ---------------------------------------------------------------------------


def test_decisions_over_a_pilot_life() -> None:
    p = _payload(lifetime=10_000, retire_before_end=1_000, idle_timeout=600)
    busy = lifecycle.State(boot=0, idle_since=None)
    assert lifecycle.decide(p, busy, 5_000)[0] is lifecycle.Action.NONE
    assert lifecycle.decide(p, busy, 9_000)[0] is lifecycle.Action.RETIRE
    assert lifecycle.decide(p, busy, 10_000)[0] is lifecycle.Action.SHUTDOWN
    idle = lifecycle.State(boot=0, idle_since=4_000)
    assert lifecycle.decide(p, idle, 4_500)[0] is lifecycle.Action.NONE
    assert lifecycle.decide(p, idle, 4_600) == (lifecycle.Action.SHUTDOWN, "idle for 600s")
    retired = lifecycle.State(boot=0, idle_since=9_100, retiring=True)
    assert lifecycle.decide(p, retired, 9_100) == (
        lifecycle.Action.SHUTDOWN,
        "retired: no job left",
    )


STARTD_ADDRESS = "<10.0.0.7:9618?addrs=10.0.0.7-9618&alias=pilot&sock=startd_1234_abcd>"


@pytest.fixture
def fake_condor(tmp_path: Path) -> Path:
    """condor_status / condor_off / condor_config_val / poweroff as scripts
    that record calls; condor_status prints the slot states written in a state file (one
    line per slot, as ``-af State`` does). The startd's address file exists: it is up."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "slot").write_text("Unclaimed\n")
    (tmp_path / "startd_address").write_text(f"{STARTD_ADDRESS}\n$CondorVersion: 25.14.0 $\n")
    for name in ("condor_status", "condor_off", "condor_config_val", "poweroff"):
        script = bindir / name
        body = f'echo "{name} $*" >> {tmp_path}/calls\n'
        if name == "condor_status":
            body += f"cat {tmp_path}/slot\n"
        if name == "condor_config_val":
            body += f"echo {tmp_path}/startd_address\n"
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
    return tmp_path


def _runner(tmp: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PATH": f"{tmp}/bin:{os.environ['PATH']}"}
    return lambda cmd: (
        subprocess.run(list(cmd), check=True, capture_output=True, text=True, env=env).stdout
    )


def _break(tmp: Path, name: str, how: str) -> None:
    """Make one fake command fail: exit non-zero, hang past the runner's timeout, or vanish."""
    script = tmp / "bin" / name
    if how == "missing":
        script.unlink()
    elif how == "exit":
        script.write_text(
            f'#!/bin/sh\necho "{name} $*" >> {tmp}/calls\necho "Error: nope" >&2\nexit 1\n'
        )
    elif how == "hang":
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> {tmp}/calls\nexec sleep 5\n')


def _timeout_runner(tmp: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PATH": f"{tmp}/bin:{os.environ['PATH']}"}
    return lambda cmd: (
        subprocess.run(
            list(cmd), check=True, capture_output=True, text=True, env=env, timeout=0.5
        ).stdout
    )


def _supervisor(
    fake_condor: Path,
    log: Callable[[str], None] = lambda _: None,
    *,
    boot: int = 0,
    lifetime: int = 100_000,
    runner: Callable[[Sequence[str]], str] | None = None,
    payload: dict[str, Any] | None = None,
    **kw: Any,
) -> lifecycle.Supervisor:
    """The supervisor of a pilot booted at ``boot`` that lives ``lifetime`` seconds,
    retiring 1000 s before the end and idle 600 s at most (``payload``: more of its
    payload), over the stand-in HTCondor (``runner``: how its commands run); ``kw``: the
    supervisor's other settings."""
    p = _payload(lifetime=lifetime, retire_before_end=1_000, idle_timeout=600, **(payload or {}))
    state = lifecycle.State(boot=boot, idle_since=None)
    return lifecycle.Supervisor(p, state, runner=runner or _runner(fake_condor), log=log, **kw)


def test_supervisor_retires_lets_the_job_end_then_powers_off(fake_condor: Path) -> None:
    log: list[str] = []
    sup = _supervisor(fake_condor, log.append, lifetime=10_000)
    (fake_condor / "slot").write_text("Unclaimed\nClaimed\n")  # a dynamic slot holds a job
    assert sup.tick(5_000) is lifecycle.Action.NONE
    assert sup.tick(9_100) is lifecycle.Action.RETIRE
    assert sup.tick(9_200) is lifecycle.Action.NONE  # still running its job: wait
    (fake_condor / "slot").write_text("Unclaimed\n")  # job done
    assert sup.tick(9_300) is lifecycle.Action.SHUTDOWN
    calls = (fake_condor / "calls").read_text()
    assert f"condor_status -direct {STARTD_ADDRESS} -af State" in calls
    # Retiring sends the startd nothing: its START is false from GLIDEIN_ToRetire on.
    assert "drain" not in calls
    assert "condor_off -graceful -daemon master" in calls
    assert calls.strip().endswith("poweroff")
    assert sup.powered_off is True
    assert not sup.fatal
    assert log == [
        f"startd up at {STARTD_ADDRESS}",
        "retiring before the end of the lifetime: no new jobs, the running ones may finish",
        "shutting down: retired: no job left",
    ]


def test_supervisor_idle_timeout(fake_condor: Path) -> None:
    sup = _supervisor(fake_condor)
    assert sup.tick(100) is lifecycle.Action.NONE  # idle from now
    assert sup.tick(650) is lifecycle.Action.NONE
    assert sup.tick(700) is lifecycle.Action.SHUTDOWN


def test_a_claimed_static_slot_is_busy(fake_condor: Path) -> None:
    # Not partitionable: the slot's own Cpus never drops, only its State says it is claimed.
    sup = _supervisor(fake_condor, payload={"partitionable": False})
    (fake_condor / "slot").write_text("Claimed\n")
    assert sup.tick(100) is lifecycle.Action.NONE
    assert sup.tick(5_000) is lifecycle.Action.NONE
    assert sup.state.idle_since is None


def test_supervisor_waits_for_the_startd_to_start(fake_condor: Path) -> None:
    address = fake_condor / "startd_address"
    address.unlink()  # the master has not started the startd yet
    _break(fake_condor, "condor_status", "exit")
    log: list[str] = []
    sup = _supervisor(fake_condor, log.append, boot=1_000, startup_timeout=600, max_failures=2)
    for now in (1_000, 1_010, 1_020, 1_030):
        assert sup.tick(now) is lifecycle.Action.NONE
    assert len(log) == 1
    assert log[0].startswith("waiting for the startd (up to 600s)")
    address.write_text(STARTD_ADDRESS + "\n")  # it listens, but does not answer yet
    assert sup.tick(1_040) is lifecycle.Action.NONE
    assert not sup.started
    (fake_condor / "bin/condor_status").write_text(
        f'#!/bin/sh\necho "condor_status $*" >> {fake_condor}/calls\necho Unclaimed\n'
    )
    assert sup.tick(1_050) is lifecycle.Action.NONE
    assert sup.started
    assert log[-1] == f"startd up at {STARTD_ADDRESS}"
    assert sup.state.idle_since == 1_050  # idle counts from the startd's first answer
    assert "poweroff" not in (fake_condor / "calls").read_text()


def test_supervisor_gives_up_on_a_startd_that_never_answers(fake_condor: Path) -> None:
    (fake_condor / "startd_address").unlink()
    log: list[str] = []
    sup = _supervisor(fake_condor, log.append, boot=1_000, startup_timeout=600)
    assert sup.tick(1_599) is lifecycle.Action.NONE
    assert sup.tick(1_600) is lifecycle.Action.SHUTDOWN
    assert log[-1].startswith("FATAL: the startd did not answer within 600s of boot: ")
    assert "no startd address yet" in log[-1]
    assert sup.fatal
    assert sup.powered_off is True
    assert (fake_condor / "calls").read_text().strip().endswith("poweroff")


def test_a_failed_look_at_a_running_startd_is_not_fatal(fake_condor: Path) -> None:
    log: list[str] = []
    sup = _supervisor(fake_condor, log.append, max_failures=3)
    (fake_condor / "slot").write_text("Claimed\n")
    assert sup.tick(100) is lifecycle.Action.NONE
    good = (fake_condor / "bin/condor_status").read_text()
    _break(fake_condor, "condor_status", "exit")
    assert sup.tick(200) is lifecycle.Action.NONE
    assert sup.tick(300) is lifecycle.Action.NONE
    assert sup.state.idle_since is None  # unknown is not idle
    assert "(2 of 3 failures allowed in a row)" in log[-1]
    assert "condor_status exited 1: Error: nope" in log[-1]
    (fake_condor / "bin/condor_status").write_text(good)  # answers again: the count restarts
    assert sup.tick(400) is lifecycle.Action.NONE
    _break(fake_condor, "condor_status", "exit")
    assert sup.tick(500) is lifecycle.Action.NONE
    assert sup.tick(600) is lifecycle.Action.NONE
    assert sup.tick(700) is lifecycle.Action.SHUTDOWN
    assert log[-1].startswith("FATAL: the startd did not answer 3 times in a row")
    assert sup.fatal
    assert (fake_condor / "calls").read_text().strip().endswith("poweroff")


def test_the_lifetime_still_counts_while_the_startd_does_not_answer(fake_condor: Path) -> None:
    sup = _supervisor(fake_condor, lifetime=10_000, max_failures=100)
    (fake_condor / "slot").write_text("Claimed\n")
    assert sup.tick(100) is lifecycle.Action.NONE
    _break(fake_condor, "condor_status", "exit")
    assert sup.tick(10_000) is lifecycle.Action.SHUTDOWN
    assert not sup.fatal


@pytest.mark.parametrize("how", ["exit", "hang", "missing"])
def test_failed_condor_off_still_powers_off(fake_condor: Path, how: str) -> None:
    log: list[str] = []
    sup = _supervisor(fake_condor, log.append, runner=_timeout_runner(fake_condor))
    _break(fake_condor, "condor_off", how)
    assert sup.tick(100) is lifecycle.Action.NONE
    assert sup.tick(700) is lifecycle.Action.SHUTDOWN
    assert any(line.startswith("condor_off failed, powering off anyway") for line in log)
    assert (fake_condor / "calls").read_text().strip().endswith("poweroff")
    assert sup.powered_off is True


def test_a_failed_power_off_is_reported(fake_condor: Path) -> None:
    log: list[str] = []
    sup = _supervisor(fake_condor, log.append)
    _break(fake_condor, "poweroff", "exit")
    sup.tick(100)
    assert sup.tick(700) is lifecycle.Action.SHUTDOWN
    assert sup.powered_off is False
    assert log[-1].startswith("FATAL: poweroff failed: poweroff exited 1")


def test_supervisor_shuts_down_when_condor_master_exits(fake_condor: Path) -> None:
    exit_code: list[int | None] = [None]
    log: list[str] = []
    sup = _supervisor(fake_condor, log.append, master_exit=lambda: exit_code[0])
    assert sup.tick(100) is lifecycle.Action.NONE
    exit_code[0] = 4
    assert sup.tick(200) is lifecycle.Action.SHUTDOWN
    assert log[-1] == "FATAL: condor_master exited (status 4); shutting down"
    assert (fake_condor / "calls").read_text().strip().endswith("poweroff")


def test_the_startd_address_file_can_be_given(fake_condor: Path) -> None:
    given = fake_condor / "elsewhere"
    given.write_text("<127.0.0.1:40001?addrs=127.0.0.1-40001&alias=vm>\n")
    sup = lifecycle.Supervisor(
        _payload(),
        lifecycle.State(boot=0, idle_since=None),
        runner=_runner(fake_condor),
        log=lambda _: None,
        address_file=given,
        startd_log=fake_condor / "StartLog",
    )
    sup.tick(100)
    calls = (fake_condor / "calls").read_text()
    assert "condor_config_val" not in calls
    assert (
        "condor_status -direct <127.0.0.1:40001?addrs=127.0.0.1-40001&alias=vm> -af State" in calls
    )


def _run(
    tmp_path: Path, payload: bytes, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m glidein_operator.pilot`` on ``payload`` (its file given by
    GLIDEIN_PAYLOAD_FILE, with ``env`` besides), its log, configuration and tokens in
    ``tmp_path``."""
    given = tmp_path / "user-data"
    given.write_bytes(payload)
    command = [sys.executable, "-m", "glidein_operator.pilot", *args]
    command += ["--log", str(tmp_path / "boot.log"), "--config-dir", str(tmp_path / "c")]
    command += ["--token-dir", str(tmp_path / "t")]
    return subprocess.run(
        command,
        env={**os.environ, "GLIDEIN_PAYLOAD_FILE": str(given), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_entry_point_fails_loudly_on_a_bad_payload(tmp_path: Path) -> None:
    proc = _run(tmp_path, b"#cloud-config\n")
    assert proc.returncode == 2
    assert "FATAL: not a glidein payload" in proc.stderr
    assert "FATAL: not a glidein payload" in (tmp_path / "boot.log").read_text()


def test_entry_point_writes_config_from_a_pod_payload(tmp_path: Path) -> None:
    good = encode(_payload(not_after=2**40))
    proc = _run(tmp_path, good, "--no-supervise", GLIDEIN_PILOT_ID="abcd1234-hlt-7-0")
    assert proc.returncode == 0, proc.stderr
    assert (
        'GlideinPilotId = "abcd1234-hlt-7-0"' in (tmp_path / "c/50-glidein-pilot.conf").read_text()
    )


def _pilot(tmp_path: Path, *args: str, env: dict[str, str] | None = None, path: str = "") -> str:
    """Run ``glidein-pilot`` on a pod payload; returns the boot log."""
    good = encode(_payload(not_after=2**40, idle_timeout=1))
    more = {"GLIDEIN_PILOT_ID": "abcd1234-hlt-7-0", "PATH": path or os.environ["PATH"]}
    proc = _run(tmp_path, good, *args, **{**more, **(env or {})})
    log = (tmp_path / "boot.log").read_text()
    # Every line is in the log (no traceback), but for the log ends printed at the end.
    assert _unframed(proc.stderr).strip() == log.strip()
    return f"{proc.returncode}\n{log}"


def _unframed(text: str) -> str:
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("==== glidein-pilot log tail: "):
            inside = True
        elif inside and line.startswith("==== end of "):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def test_a_fatal_error_prints_the_ends_of_the_logs_framed_on_the_console(tmp_path: Path) -> None:
    from glidein_operator.pilot import bundle

    logs = tmp_path / "condor-log"
    logs.mkdir()
    (logs / "MasterLog").write_text("".join(f"master line {i}\n" for i in range(100)))
    (logs / "StartLog").write_text("ERROR: AUTHENTICATE:1003:Failed to authenticate\n")
    (logs / "StarterLog.slot1_1").write_text("Job 12.0 exited with status 1\n")
    proc = _run(tmp_path, b"#cloud-config\n", "--condor-log-dir", str(logs))
    assert proc.returncode == 2
    tails = bundle.log_tails(proc.stderr)
    assert set(tails) == {"MasterLog", "StartLog", "StarterLog.slot1_1", "glidein-pilot.log"}
    assert tails["MasterLog"].splitlines() == [f"master line {i}" for i in range(92, 100)]
    assert "AUTHENTICATE:1003" in tails["StartLog"]
    assert "exited with status 1" in tails["StarterLog.slot1_1"]
    assert "FATAL: not a glidein payload" in tails["glidein-pilot.log"]
    # What the operator keeps of it: each log's end under its name, the pilot's last.
    kept = bundle.condensed(proc.stderr)
    assert kept.index("--- StartLog") < kept.index("--- glidein-pilot.log")
    assert kept.rstrip().endswith(tails["glidein-pilot.log"].splitlines()[-1])


def test_the_log_ends_are_printed_after_condor_off_and_before_the_power_off(
    fake_condor: Path,
) -> None:
    order: list[str] = []
    runner = _runner(fake_condor)

    def recording(cmd: Sequence[str]) -> str:
        order.append(cmd[0])
        return runner(cmd)

    sup = _supervisor(
        fake_condor, runner=recording, before_shutdown=lambda: order.append("log ends")
    )
    sup.tick(100)
    assert sup.tick(700) is lifecycle.Action.SHUTDOWN  # idle past its timeout
    assert order[-3:] == ["condor_off", "log ends", "poweroff"]


def test_entry_point_fails_loudly_without_htcondor(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    out = _pilot(tmp_path, path=str(empty))
    code, _, log = out.partition("\n")
    assert code == "2"
    assert "FATAL: condor_master, condor_status, condor_config_val not found on PATH" in log
    assert not (tmp_path / "c").exists()  # nothing written, nothing started


def test_entry_point_supervises_until_power_off(tmp_path: Path) -> None:
    """The whole loop with stand-ins for HTCondor: the master writes the startd's address
    file, the startd says it is idle, the idle timeout passes, condor_off stops the
    master, the shutdown command runs, and the pilot exits 0."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    address = tmp_path / "startd_address"
    scripts = {
        "condor_master": f'echo $$ > {tmp_path}/master.pid\necho "<127.0.0.1:5>" > {address}\n'
        "exec sleep 60",
        "condor_status": 'echo "condor_status $*" >> CALLS\necho Unclaimed',
        "condor_off": 'echo "condor_off $*" >> CALLS\nkill "$(cat PID)"',
        "halt-stand-in": 'echo "halt-stand-in $*" >> CALLS',
    }
    for name, body in scripts.items():
        body = body.replace("CALLS", str(tmp_path / "calls"))
        body = body.replace("PID", str(tmp_path / "master.pid"))
        (bindir / name).write_text("#!/bin/sh\n" + body + "\n")
        (bindir / name).chmod(0o755)
    out = _pilot(
        tmp_path,
        "--shutdown-command",
        "halt-stand-in --now",
        env={
            "GLIDEIN_PILOT_INTERVAL": "0.2",
            "GLIDEIN_PILOT_STARTD_ADDRESS_FILE": str(address),
            "GLIDEIN_PILOT_CPUS": "1",
        },
        path=f"{bindir}:{os.environ['PATH']}",
    )
    code, _, log = out.partition("\n")
    assert code == "0", log
    assert "slot: cpus 1 (smallest of: " in log
    assert "startd up at <127.0.0.1:5>" in log
    assert "shutting down: idle for" in log
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "condor_status -direct <127.0.0.1:5> -af State"
    assert calls[-2:] == ["condor_off -graceful -daemon master", "halt-stand-in --now"]
    assert "NUM_CPUS = 1" in (tmp_path / "c/50-glidein-pilot.conf").read_text()


def test_entry_point_gives_up_on_a_master_that_dies(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in {
        "condor_master": "exit 3",
        "condor_status": "exit 1",
        "condor_off": "exit 1",
        "condor_config_val": f"echo {tmp_path}/nowhere",
        "halt-stand-in": f"touch {tmp_path}/halted",
    }.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    out = _pilot(
        tmp_path,
        "--interval",
        "0.2",
        "--shutdown-command",
        "halt-stand-in",
        path=f"{bindir}:{os.environ['PATH']}",
    )
    code, _, log = out.partition("\n")
    assert code == "2"
    assert "FATAL: condor_master exited (status 3); shutting down" in log
    assert "condor_off failed, powering off anyway: condor_off exited 1" in log
    assert (tmp_path / "halted").exists()


def test_options_come_from_the_environment_too(tmp_path: Path) -> None:
    from glidein_operator.pilot import main as pilot_main

    parser = pilot_main._parser(
        {
            "GLIDEIN_PILOT_STARTUP_TIMEOUT": "42",
            "GLIDEIN_PILOT_NO_SUPERVISE": "1",
            "GLIDEIN_PILOT_CGROUP_ROOT": str(tmp_path),
            "_CONDOR_MACHINE_AD": "/scratch/.machine.ad",
        }
    )
    args = parser.parse_args([])
    assert args.startup_timeout == 42.0
    assert args.no_supervise is True
    assert args.cgroup_root == tmp_path
    assert args.machine_ad == Path("/scratch/.machine.ad")
    assert args.max_query_failures == 5
    assert parser.parse_args(["--startup-timeout", "7"]).startup_timeout == 7.0


def test_the_collector_s_refusal_is_said_once_in_the_console(tmp_path: Path) -> None:
    # StartLog lines of a startd whose token the collector would not take (HTCondor 25).
    start_log = tmp_path / "StartLog"
    start_log.write_text(
        "11/30/26 09:16:05 SECMAN: required authentication with collector 127.0.0.1:43929 "
        "failed, so aborting command UPDATE_STARTD_AD.\n"
        "11/30/26 09:16:05 ERROR: AUTHENTICATE:1003:Failed to authenticate with any method|"
        "AUTHENTICATE:1004:Failed to authenticate using IDTOKENS\n"
    )
    said: list[str] = []
    sup = lifecycle.Supervisor(
        _payload(),
        lifecycle.State(boot=0, idle_since=None),
        runner=lambda cmd: "",
        log=said.append,
        address_file=tmp_path / "no-address-yet",
        startd_log=start_log,
    )
    # The token will never do: the pilot says why once and powers the machine off.
    assert sup.tick(10) is lifecycle.Action.SHUTDOWN
    assert sup.fatal
    refused = [line for line in said if lifecycle.REFUSED in line]
    assert refused == [
        lifecycle.REFUSED + "ERROR: AUTHENTICATE:1003:Failed to authenticate with any method|"
        "AUTHENTICATE:1004:Failed to authenticate using IDTOKENS"
    ]
    console = "\n".join(["boot", *said])
    assert lifecycle.refusal_in_console(console) == (
        "ERROR: AUTHENTICATE:1003:Failed to authenticate with any method|"
        "AUTHENTICATE:1004:Failed to authenticate using IDTOKENS"
    )
    assert lifecycle.refusal("11/30/26 09:16:05 Startd up\n") is None
