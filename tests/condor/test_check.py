"""``glidein-operator check``, real: a request on a real kube-apiserver, its pool a real
HTCondor collector and schedd, its entry on the EC2 test server. When everything is right
every line says ok; a signing key that is not the pool's fails at the collector, in the
collector's words; a missing credential Secret fails with the command that makes it, and
what needs it is skipped. Never a byte of a Secret in what it prints, and nothing written:
no Secret, no change to the request, nothing but Describe calls at the cloud."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import yaml

from glidein_devkit.condor_pool import CondorPool, job
from glidein_devkit.ec2server import Ec2Server
from tests.condor.support import ec2_docs, ec2_names
from tests.support.cluster import Cluster
from tests.support.documents import Doc, credential, glidein_request, pool_key, secret

pytestmark = pytest.mark.integration

JOBS = 3
CLI = [sys.executable, "-m", "glidein_operator"]


@pytest.fixture(scope="module")
def ec2() -> Iterator[Ec2Server]:
    with Ec2Server() as server:
        yield server


@dataclass
class Setup:
    cluster: Cluster
    namespace: str
    ec2: Ec2Server
    entry: str
    # Every Secret value the check reads: none of it may be printed (a failing assertion's
    # report included).
    secret_values: list[bytes] = field(repr=False)


@pytest.fixture
def setup(
    cluster: Cluster, namespace: str, pool: CondorPool, ec2: Ec2Server
) -> Iterator[Callable[..., Setup]]:
    """Applies the namespace's request on the session's pool, its entry on the EC2 test
    server: ``setup(signing_key, aws=True)``, ``aws`` whether its credential Secret is
    there. The entry, its trust domain and image go after the test."""
    names = ec2_names(namespace)

    def apply(signing_key: bytes, aws: bool = True) -> Setup:
        access = {
            "accessKeyId": "AKIA" + secrets.token_hex(8).upper(),
            "secretAccessKey": secrets.token_urlsafe(30),
        }
        request = glidein_request(
            namespace,
            pool.collector,
            pool.schedd_name,
            [credential(names.trust_domain)],
            jobConstraint=f'GlideinCheck =?= "{namespace}"',
            entries={"names": [names.entry]},
        )
        docs: list[Doc] = [
            *ec2_docs(names, ec2),
            *([secret(namespace, "aws", access)] if aws else []),
            pool_key(namespace, signing_key),
            request,
        ]
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        keys = [signing_key, *(v.encode() for v in access.values())]
        return Setup(cluster, namespace, ec2, names.entry, keys)

    yield apply
    for kind, name in (
        ("cloudentry", names.entry),
        ("vmimage", names.image),
        ("trustdomain", names.trust_domain),
    ):
        cluster.kubectl("delete", kind, name, "--wait=false", check=False)


@dataclass
class Checked:
    code: int
    out: str
    err: str
    seconds: float

    def rows(self, status: str, check: str) -> list[str]:
        return [
            line
            for line in self.out.splitlines()
            if line.split()[:1] == [status] and line[6:].startswith(check)
        ]


def _check(s: Setup) -> Checked:
    """The command, as an admin runs it, and proof it wrote nothing."""

    def secrets_now() -> tuple[str, set[str]]:
        # Here exactly; everywhere (the operator's namespace too): nothing new. Earlier
        # tests' namespaces may still be going.
        here = s.cluster.kubectl("get", "secrets", "-n", s.namespace, "-o", "name").stdout
        everywhere = s.cluster.kubectl(
            "get", "secrets", "-A", "-o", "jsonpath={range .items[*]}{.metadata.uid} {end}"
        ).stdout.split()
        return here, set(everywhere)

    secrets_before = secrets_now()
    version_before = s.cluster.kubectl(
        "get", "greq", "vo", "-n", s.namespace, "-o", "jsonpath={.metadata.resourceVersion}"
    ).stdout
    calls_before = s.ec2.calls()
    t0 = time.monotonic()
    proc = subprocess.run(
        [*CLI, "check", "vo", "--namespace", s.namespace],
        env={**os.environ, "KUBECONFIG": str(s.cluster.kubeconfig)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    took = time.monotonic() - t0
    # Not a byte of a Secret, nor a token, in anything it printed.
    for stream in (proc.stdout, proc.stderr):
        for value in s.secret_values:
            for form in (value, base64.b64encode(value), value.hex().encode()):
                for i in range(len(form) - 7):
                    assert form[i : i + 8] not in stream, "a Secret's bytes were printed"
        assert b"eyJ" not in stream, "a token was printed"
    # Nothing written: no Secret (no kept copy), the request as it was, only reads at EC2.
    secrets_after = secrets_now()
    assert secrets_after[0] == secrets_before[0]
    assert secrets_after[1] <= secrets_before[1], "a Secret was created"
    assert (
        s.cluster.kubectl(
            "get", "greq", "vo", "-n", s.namespace, "-o", "jsonpath={.metadata.resourceVersion}"
        ).stdout
        == version_before
    )
    calls = s.ec2.calls()
    made = {a: n - calls_before.get(a, 0) for a, n in calls.items() if n > calls_before.get(a, 0)}
    assert all(a.startswith("Describe") for a in made), made
    out, err = proc.stdout.decode(), proc.stderr.decode()
    print(f"\n$ glidein-operator check vo --namespace {s.namespace}   ({took:.1f}s)\n{out}{err}")
    return Checked(proc.returncode, out, err, took)


def test_a_working_setup_passes_every_check(
    namespace: str, pool: CondorPool, setup: Callable[..., Setup]
) -> None:
    s = setup(pool.signing_key())
    cluster_id = pool.submit(job(extra=[f'+GlideinCheck = "{namespace}"']), JOBS)
    try:
        got = _check(s)
    finally:
        pool.tool("condor_rm", str(cluster_id), check=False)
    assert got.code == 0, got.out + got.err
    lines = got.out.splitlines()
    assert lines
    assert all(line.startswith("ok  ") for line in lines), got.out
    checks = [line[6:].split()[0] for line in lines]
    assert checks == [
        "request",
        "secret",
        "secret",
        "pool",
        "entry",
        "image",
        "schedd",
        "plan",
    ]
    (token,) = got.rows("ok", "pool token")
    assert "authorizes ADVERTISE_STARTD" in token
    assert "glidein-check@127.0.0.1" in token
    (schedd,) = got.rows("ok", "schedd")
    assert f"{JOBS} idle job(s) match jobConstraint" in schedd
    (planned,) = got.rows("ok", "plan")
    assert f"{JOBS} idle job(s) -> {JOBS} pilot(s): {s.entry} {JOBS}x t3.small" in planned


def test_a_signing_key_that_is_not_the_pools_fails_in_the_collectors_words(
    namespace: str, setup: Callable[..., Setup]
) -> None:
    # 64 random bytes, scrambled: a POOL file like the collector's, of another pool.
    s = setup(os.urandom(64))
    got = _check(s)
    assert got.code == 1
    (token,) = got.rows("FAIL", "pool token")
    assert "AUTHENTICATE:1004:Failed to authenticate using IDTOKENS" in token
    assert "Hash supplied by server doesn't match" in token
    assert (
        f"fix: the signingKey in Secret {namespace}/pool-key is not the collector's POOL key: "
        f"on the central manager, kubectl -n {namespace} create secret generic pool-key "
        "--from-file=signingKey=/etc/condor/passwords.d/POOL --dry-run=client -o yaml | "
        "kubectl apply -f -"
    ) in token
    # What reads the pool with a token minted from that key is not tried; the cloud is.
    assert got.rows("skip", "schedd")
    assert got.rows("skip", "plan")
    assert got.rows("ok", "entry")
    assert got.rows("ok", "image")


def test_a_missing_credential_secret_says_how_to_make_it_and_skips_what_needs_it(
    namespace: str, pool: CondorPool, setup: Callable[..., Setup]
) -> None:
    s = setup(pool.signing_key(), aws=False)
    got = _check(s)
    assert got.code == 1
    (secret,) = got.rows("FAIL", "secret")
    assert f"{namespace}/aws: not found in namespace {namespace}" in secret
    assert secret.endswith(
        f"fix: kubectl -n {namespace} create secret generic aws "
        "--from-literal=accessKeyId=... --from-literal=secretAccessKey=..."
    )
    assert got.rows("ok", "pool token")
    assert got.rows("skip", "entry") == [
        f"skip  entry       {s.entry}: needs Secret {namespace}/aws (failed above)"
    ]
    assert got.rows("skip", "image")
    assert got.rows("skip", "plan")
    assert not got.rows("FAIL", "entry")


def test_a_plan_with_nothing_to_start_says_which_jobs_and_why(
    namespace: str, pool: CondorPool, setup: Callable[..., Setup]
) -> None:
    s = setup(pool.signing_key())
    got = _check(s)
    assert got.code == 1
    (empty,) = got.rows("FAIL", "plan")
    assert f"no idle jobs match jobConstraint 'GlideinCheck =?= \"{namespace}\"'" in empty
    # A job larger than any instance type of the entry: it matches no entry, and says why.
    cluster_id = pool.submit(job(cpus=64, extra=[f'+GlideinCheck = "{namespace}"']))
    try:
        got = _check(s)
    finally:
        pool.tool("condor_rm", str(cluster_id), check=False)
    assert got.code == 1
    (unmatched,) = got.rows("FAIL", "plan")
    assert (
        f"jobs match no entry ({s.entry}): 1 job(s) of 64 cpu(s)/64 MB at schedd@glidein.test: "
        "the jobs' Requirements match no entry"
    ) in unmatched
    assert [line.split()[0] for line in got.out.splitlines()] == ["ok"] * 7 + ["FAIL"]
