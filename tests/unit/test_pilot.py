"""The pilot side: payload round trip, every source of it, the HTCondor configuration,
and lifetime/idle enforcement with injected time and fake HTCondor commands."""

from __future__ import annotations

import ast
import base64
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from glidein_operator.api.objects import parse
from glidein_operator.credentials import idtokens, payloads
from glidein_operator.pilot import condor_config, lifecycle, sources
from glidein_operator.pilot.payload import LIMITS, Payload, PayloadError, decode, encode
from tests.malformed_cases import example

NOW = 1_800_000_000
POOL_KEY = bytes(range(32))


def _payload(**kw: object) -> Payload:
    req = parse(example("GlideinRequest", "cms-production")).spec
    entry = parse(example("CloudEntry", "hlt-openstack")).spec
    p = payloads.build(
        request="cms/cms-production",
        request_uid="uid-1",
        spec=req,
        entry="hlt-openstack",  # type: ignore[arg-type]
        entry_spec=entry,
        batch="abcd1234-hlt-7",
        pool_signing_key=POOL_KEY,  # type: ignore[arg-type]
        premade_token=None,
        now=NOW,
    )
    return replace(p, **kw)  # type: ignore[arg-type]


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
    assert claims["iss"] == "cms-pool.example.org"
    assert claims["scope"] == idtokens.PILOT_SCOPE
    assert claims["exp"] == NOW + p.lifetime + payloads.BOOT_GRACE
    assert idtokens.verify(p.token, POOL_KEY)
    assert not idtokens.verify(p.token, b"another pool's key")


def test_hkdf_matches_rfc5869_test_vector() -> None:
    # RFC 5869, test case 1.
    okm = idtokens.hkdf_sha256(
        bytes.fromhex("0b" * 22),
        bytes.fromhex("000102030405060708090a0b0c"),
        bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


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


class _Metadata(BaseHTTPRequestHandler):
    """EC2 IMDSv2 (token required) and OpenStack's metadata service on loopback."""

    user_data = b""
    token = "imds-token-123"

    def log_message(self, *a: object) -> None:
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        if self.path == "/latest/api/token" and self.headers.get(
            "X-aws-ec2-metadata-token-ttl-seconds"
        ):
            return self._reply(200, self.token.encode())
        return self._reply(403, b"")

    def do_GET(self) -> None:
        if self.path.startswith("/latest/"):
            if self.headers.get("X-aws-ec2-metadata-token") != self.token:
                return self._reply(401, b"")  # IMDSv2: no token, no data
            if self.path == "/latest/user-data":
                return self._reply(200, self.user_data)
            if self.path == "/latest/meta-data/ami-launch-index":
                return self._reply(200, b"3")
        if self.path == "/openstack/latest/user_data":
            return self._reply(200, self.user_data)
        if self.path == "/openstack/latest/meta_data.json":
            meta = {
                "name": "glidein-abcd1234-hlt-7-5",
                "meta": {"glidein.dev/batch": "abcd1234-hlt-7"},
            }
            return self._reply(200, json.dumps(meta).encode())
        return self._reply(404, b"")


@pytest.fixture
def metadata() -> Iterator[str]:
    handler = type("H", (_Metadata,), {"user_data": encode(_payload())})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ec2_imdsv2(metadata: str) -> None:
    ctx = sources.from_ec2(metadata)
    assert ctx.resolve_pilot_id(decode(ctx.raw, NOW).batch) == "abcd1234-hlt-7-3"


def test_openstack_metadata_service(metadata: str) -> None:
    ctx = sources.from_openstack_metadata(metadata)
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
    assert f"GlideinToRetire = {NOW + 48 * 3600 - 2 * 3600}" in text
    assert "START = (true) && (time() < GlideinToRetire)" in text
    assert "SLOT_TYPE_1_PARTITIONABLE = True" in text
    assert "STARTD_NOCLAIM_SHUTDOWN = 1200" in text
    assert 'GLIDEIN_CMSSite = "T2_CH_CERN_HLT"' in text
    assert "SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS" in text
    token = tmp_path / "tokens.d/glidein-pilot.token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tokens.d").stat().st_mode) == 0o700
    assert p.token not in text


# --- lifecycle ---------------------------------------------------------------------------


def test_decisions_over_a_pilot_life() -> None:
    p = _payload(lifetime=10_000, retire_before_end=1_000, idle_timeout=600)
    busy = lifecycle.State(boot=0, idle_since=None)
    assert lifecycle.decide(p, busy, 5_000)[0] is lifecycle.Action.NONE
    assert lifecycle.decide(p, busy, 9_000)[0] is lifecycle.Action.DRAIN
    assert lifecycle.decide(p, busy, 10_000)[0] is lifecycle.Action.SHUTDOWN
    idle = lifecycle.State(boot=0, idle_since=4_000)
    assert lifecycle.decide(p, idle, 4_500)[0] is lifecycle.Action.NONE
    assert lifecycle.decide(p, idle, 4_600) == (lifecycle.Action.SHUTDOWN, "idle for 600s")
    drained = lifecycle.State(boot=0, idle_since=9_100, draining=True)
    assert lifecycle.decide(p, drained, 9_100)[0] is lifecycle.Action.SHUTDOWN


@pytest.fixture
def fake_condor(tmp_path: Path) -> Path:
    """condor_status / condor_drain / condor_off / poweroff as scripts that record calls;
    condor_status reports the free and total cores written in a state file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "slot").write_text("8 8\n")
    for name in ("condor_status", "condor_drain", "condor_off", "poweroff"):
        script = bindir / name
        body = f'echo "{name} $*" >> {tmp_path}/calls\n'
        if name == "condor_status":
            body += f"cat {tmp_path}/slot\n"
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
    return tmp_path


def _runner(tmp: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PATH": f"{tmp}/bin:{os.environ['PATH']}"}
    return lambda cmd: (
        subprocess.run(list(cmd), check=True, capture_output=True, text=True, env=env).stdout
    )


def test_supervisor_drains_then_powers_off(fake_condor: Path) -> None:
    p = _payload(lifetime=10_000, retire_before_end=1_000, idle_timeout=600)
    log: list[str] = []
    sup = lifecycle.Supervisor(
        p, lifecycle.State(boot=0, idle_since=None), runner=_runner(fake_condor), log=log.append
    )
    (fake_condor / "slot").write_text("2 8\n")  # a job holds 6 cores
    assert sup.tick(5_000) is lifecycle.Action.NONE
    assert sup.tick(9_100) is lifecycle.Action.DRAIN
    assert sup.tick(9_200) is lifecycle.Action.NONE  # still running its job: wait
    (fake_condor / "slot").write_text("8 8\n")  # job done
    assert sup.tick(9_300) is lifecycle.Action.SHUTDOWN
    calls = (fake_condor / "calls").read_text()
    assert "condor_drain -graceful -start False" in calls
    assert "condor_off -graceful -daemon master" in calls
    assert calls.strip().endswith("poweroff")
    assert log == [
        "draining: retiring before the end of the lifetime",
        "shutting down: drained: no job left",
    ]


def test_supervisor_idle_timeout(fake_condor: Path) -> None:
    p = _payload(lifetime=100_000, retire_before_end=1_000, idle_timeout=600)
    sup = lifecycle.Supervisor(
        p, lifecycle.State(boot=0, idle_since=None), runner=_runner(fake_condor), log=lambda _: None
    )
    assert sup.tick(100) is lifecycle.Action.NONE  # idle from now
    assert sup.tick(650) is lifecycle.Action.NONE
    assert sup.tick(700) is lifecycle.Action.SHUTDOWN


def test_entry_point_fails_loudly_on_a_bad_payload(tmp_path: Path) -> None:
    bad = tmp_path / "user-data"
    bad.write_text("#cloud-config\n")
    env = {**os.environ, "GLIDEIN_PAYLOAD_FILE": str(bad)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glidein_operator.pilot",
            "--log",
            str(tmp_path / "boot.log"),
            "--config-dir",
            str(tmp_path / "c"),
            "--token-dir",
            str(tmp_path / "t"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "FATAL: not a glidein payload" in proc.stderr
    assert "FATAL: not a glidein payload" in (tmp_path / "boot.log").read_text()


def test_entry_point_writes_config_from_a_pod_payload(tmp_path: Path) -> None:
    good = tmp_path / "user-data"
    good.write_bytes(encode(_payload(not_after=2**40)))
    env = {**os.environ, "GLIDEIN_PAYLOAD_FILE": str(good), "GLIDEIN_PILOT_ID": "abcd1234-hlt-7-0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glidein_operator.pilot",
            "--no-supervise",
            "--log",
            str(tmp_path / "boot.log"),
            "--config-dir",
            str(tmp_path / "c"),
            "--token-dir",
            str(tmp_path / "t"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        'GlideinPilotId = "abcd1234-hlt-7-0"' in (tmp_path / "c/50-glidein-pilot.conf").read_text()
    )
