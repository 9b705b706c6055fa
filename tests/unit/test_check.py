"""The pure half of ``glidein-operator check``: its lines, how a collector's refusal is read
and what fix each kind gets, and the commands it prints."""

from __future__ import annotations

from typing import Any

import pytest

from glidein_operator.condor.htcondor import refusal_words, sinful
from glidein_operator.condor.interface import CondorError
from glidein_operator.controller.check import (
    Refusal,
    Row,
    Status,
    passed,
    refusal,
    render,
    secret_command,
    token_fix,
)

# The client's security log of a ping with a token signed by another key (HTCondor 25).
WRONG_KEY_LOG = """\
11/30/26 15:21:03 SECMAN: command 60040 DC_SEC_QUERY to <127.0.0.1:43069> from TCP port 43463 (blocking).
11/30/26 15:21:03 HANDSHAKE: server replied (method = 2048)
11/30/26 15:21:03 Hash supplied by server doesn't match that calculated by the client.
11/30/26 15:21:03 AUTHENTICATE: method 2048 (IDTOKENS) failed.
11/30/26 15:21:03 SECMAN: required authentication with <127.0.0.1:43069> failed, so aborting command DC_SEC_QUERY.
11/30/26 15:21:03 ERROR: AUTHENTICATE:1003:Failed to authenticate with any method|AUTHENTICATE:1004:Failed to authenticate using IDTOKENS
"""


def test_one_line_per_check_with_the_fix_on_it() -> None:
    rows = [
        Row(Status.OK, "request", "ns/vo", "valid"),
        Row(Status.FAIL, "secret", "ns/aws", "not found", "kubectl create ..."),
        Row(Status.SKIP, "entry", "east", "needs Secret ns/aws (failed above)"),
    ]
    assert render(rows) == [
        "ok    request  ns/vo: valid",
        "FAIL  secret   ns/aws: not found  fix: kubectl create ...",
        "skip  entry    east: needs Secret ns/aws (failed above)",
    ]
    assert not passed(rows)
    assert passed(rows[:1])
    assert not passed([])


def test_the_collectors_words_come_from_the_security_log() -> None:
    said = refusal_words(WRONG_KEY_LOG)
    assert said == (
        "Hash supplied by server doesn't match that calculated by the client; "
        "AUTHENTICATE:1003:Failed to authenticate with any method; "
        "AUTHENTICATE:1004:Failed to authenticate using IDTOKENS"
    )
    assert refusal(said) is Refusal.AUTHENTICATION


def _fix(said: str, pool: tuple[str, str], identity: str, **kw: Any) -> str:
    """``token_fix`` for the request ns/vo: its pool's collector and trust domain, the
    identity of its pilots' token; ``kw``: the Secret that holds it (``pool-key``) and
    whether it is minted (it is)."""
    collector, trust_domain = pool
    return token_fix(
        said,
        namespace="ns",
        request="vo",
        collector=collector,
        trust_domain=trust_domain,
        identity=identity,
        **{"secret": "pool-key", "minted": True, **kw},
    )


@pytest.mark.parametrize(
    ("said", "kind", "fix"),
    [
        (
            "Hash supplied by server doesn't match; AUTHENTICATE:1004:Failed to authenticate "
            "using IDTOKENS",
            Refusal.AUTHENTICATION,
            "the signingKey in Secret ns/pool-key is not the collector's POOL key: on the "
            "central manager, kubectl -n ns create secret generic pool-key "
            "--from-file=signingKey=/etc/condor/passwords.d/POOL --dry-run=client -o yaml | "
            "kubectl apply -f -",
        ),
        (
            "Ignoring token as it is from trust domain cm.example.org (server trust domain is "
            "cm.example.org:9618); AUTHENTICATE:1004:Failed to authenticate using IDTOKENS",
            Refusal.TRUST_DOMAIN,
            "the collector's TRUST_DOMAIN is not 'cm.example.org': set spec.poolTrustDomain to "
            "what `condor_config_val TRUST_DOMAIN` says on the central manager: kubectl -n ns "
            "patch glideinrequest vo --type merge -p "
            '\'{"spec":{"poolTrustDomain":"<TRUST_DOMAIN>"}}\'',
        ),
        (
            'SECMAN:2010:Received "DENIED" from server for user glidein-check@cm.example.org',
            Refusal.NOT_ALLOWED,
            "admit the pilots in the collector's configuration: ALLOW_ADVERTISE_STARTD = "
            "$(ALLOW_ADVERTISE_STARTD) glidein-*@cm.example.org (and the same in "
            "ALLOW_ADVERTISE_MASTER), then condor_reconfig on the central manager",
        ),
        (
            "Unable to connect to the remote daemon.",
            Refusal.UNREACHABLE,
            "make the collector cm.example.org:9618 (spec.collector) reachable from here and "
            "from the operator; `condor_ping -pool cm.example.org:9618 -type collector "
            "ADVERTISE_STARTD` tells",
        ),
    ],
)
def test_each_refusal_gets_its_own_fix(said: str, kind: Refusal, fix: str) -> None:
    assert refusal(said) is kind
    assert (
        _fix(said, ("cm.example.org:9618", "cm.example.org"), "glidein-check@cm.example.org") == fix
    )


def test_a_ready_token_the_collector_refuses_is_made_anew() -> None:
    said = "AUTHENTICATE:1004:Failed to authenticate using IDTOKENS"
    fix = _fix(said, ("cm:9618", "cm:9618"), "glidein@cm", secret="pool-token", minted=False)
    assert "condor_token_create -identity glidein@cm -authz ADVERTISE_STARTD" in fix
    assert "kubectl -n ns create secret generic pool-token --from-literal=token=" in fix


def test_secret_commands_leave_the_values_to_the_admin() -> None:
    assert secret_command(
        "cms", "cms-aws", "ec2-access-key", ("accessKeyId", "secretAccessKey")
    ) == (
        "kubectl -n cms create secret generic cms-aws --from-literal=accessKeyId=... "
        "--from-literal=secretAccessKey=..."
    )
    assert secret_command("cms", "proxy", "x509-proxy", ("proxy",)) == (
        "kubectl -n cms create secret generic proxy --from-file=proxy=<file>"
    )


def test_the_collector_address_ping_takes() -> None:
    assert sinful("127.0.0.1:9619") == "<127.0.0.1:9619>"
    assert sinful("localhost:9619") == "<127.0.0.1:9619>"
    assert sinful("127.0.0.1") == "<127.0.0.1:9618>"
    assert sinful("127.0.0.1:9618?sock=collector") == "<127.0.0.1:9618?sock=collector>"
    assert sinful("[::1]:9620") == "<[::1]:9620>"
    assert sinful("<10.0.0.1:9618>") == "<10.0.0.1:9618>"
    with pytest.raises(CondorError, match="cannot resolve the collector"):
        sinful("no-such-host.invalid:9618")
