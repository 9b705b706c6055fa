"""The real Pool, on the htcondor2 bindings. Every method blocks: call off the event loop.

A daemon that accepts the connection and never answers keeps a call going for about a
minute with the GIL held, which no thread can work around: the operator runs these
queries through ``isolated.IsolatedPool``, in a worker process with a deadline.

Authentication. The operator runs in a pod: FS authentication means nothing there, so the
client offers IDTOKENS (and SSL where a pool has it) only. A request may give the operator
a token for its pool (``spec.operatorTokenSecretRef``, or one minted from the pool's
signing key): the collector gets it as the preferred token of its security context, and,
since the bindings' Schedd takes no security context, it is also written to the
operator's own token directory, from which HTCondor picks the token whose issuer is the
remote daemon's TRUST_DOMAIN. Pools that let anyone READ need no token at all.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import classad2
import htcondor2

from glidein_operator.condor.interface import CondorError
from glidein_operator.credentials import idtokens

_configured: Path | None = None
_lock = threading.Lock()


def configure_client(token_dir: Path | None = None) -> Path:
    """Set the bindings' client security once per process; the token directory."""
    global _configured
    with _lock:
        if _configured is None:
            folder = token_dir or Path(tempfile.mkdtemp(prefix="glidein-operator-tokens-"))
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            folder.chmod(0o700)
            htcondor2.param["SEC_TOKEN_DIRECTORY"] = str(folder)
            htcondor2.param["SEC_CLIENT_AUTHENTICATION_METHODS"] = "IDTOKENS, SSL"
            _configured = folder
        return _configured


# The bindings' ping fails with "Failed to start command." and nothing more; what the
# collector said (HTCondor's error stack, as ``condor_ping -verbose`` prints it) and the
# lines explaining it are in the client's own security log. No line carries a token.
_REFUSAL_LINES = (
    "ERROR: ",  # the error stack: AUTHENTICATE:1004:..., SECMAN:2010:Received "DENIED"...
    "Hash supplied by server",  # the token is not signed with the collector's key
    "Ignoring token as it is from trust domain",  # not the collector's TRUST_DOMAIN
)
_security_log: Path | None = None


def _log_security(token_dir: Path) -> Path:
    """Log this process's client security exchanges (D_SECURITY), once; beside the token
    folder, not in it (HTCondor reads every file there as a token)."""
    global _security_log
    with _lock:
        if _security_log is None:
            path = token_dir.with_name(token_dir.name + "-security.log")
            htcondor2.param["TOOL_LOG"] = str(path)
            htcondor2.param["TOOL_DEBUG"] = "D_SECURITY"
            htcondor2.enable_log()
            _security_log = path
        return _security_log


def refusal_words(log: str) -> str:
    """What a security log says of a refusal: the error stack and the lines explaining
    it, without timestamps, each once, in order."""
    out: list[str] = []
    for line in log.splitlines():
        if not any(mark in line for mark in _REFUSAL_LINES):
            continue
        parts = line.split(" ", 2)  # "11/30/26 15:21:03 <text>"
        text = parts[2] if len(parts) == 3 and "/" in parts[0] else line
        for said in text.removeprefix("ERROR: ").split("|"):
            said = said.strip().rstrip(".")
            if said and said not in out:
                out.append(said)
    return "; ".join(out)


def sinful(collector: str) -> str:
    """``host[:port][?params]`` as the address ping takes, ``<ip:port?params>``: the
    bindings' ping does not resolve host names (the Collector constructor does)."""
    if collector.startswith("<"):
        return collector
    where, _, params = collector.partition("?")
    host, port = where, "9618"
    if where.startswith("["):  # [v6]:port
        host, _, rest = where[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif where.count(":") == 1:
        host, port = where.split(":")
    try:
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise CondorError(f"cannot resolve the collector {collector!r}: {exc}") from exc
    found.sort(key=lambda a: a[0] != socket.AF_INET)  # IPv4 first, as HTCondor prefers
    family, address = found[0][0], str(found[0][4][0])
    ip = f"[{address}]" if family == socket.AF_INET6 else address
    return f"<{ip}:{port}" + (f"?{params}" if params else "") + ">"


def _store_token(folder: Path, collector: str, token: str) -> None:
    # One file per pool and identity: a renewed token replaces the old one.
    claims = idtokens.claims(token)
    who = f"{collector}\n{claims.get('iss')}\n{claims.get('sub')}"
    path = folder / ("pool-" + hashlib.sha256(who.encode()).hexdigest()[:16])
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(path.with_suffix(".tmp"), path)


class HTCondorPool:
    """A user pool reached through its collector (``host[:port]``)."""

    def __init__(
        self, collector: str, token: str | None = None, token_dir: Path | None = None
    ) -> None:
        self.collector_address = collector
        # Said with every failure: a token with the wrong issuer or key fails as "failed
        # communication", and the reader needs to know which identity was offered.
        self.identity = ""
        folder = configure_client(token_dir)
        self._folder = folder
        security = None
        if token:
            claims = idtokens.claims(token)
            self.identity = (
                f" (offering a token for {claims.get('sub')} issued by {claims.get('iss')}: "
                "is that the pool's TRUST_DOMAIN, and its signing key?)"
            )
            _store_token(folder, collector, token)
            security = htcondor2.SecurityContext(token)
        self._security = security
        try:
            self._collector = htcondor2.Collector(collector, security=security)
        except Exception as exc:  # the bindings raise HTCondorException subclasses
            raise CondorError(f"collector {collector!r} is not usable: {exc}") from exc

    def schedd(self, name: str) -> htcondor2.Schedd:
        """The schedd ``name`` as the collector advertises it (asks the collector)."""
        try:
            ad = self._collector.locate(htcondor2.DaemonType.Schedd, name)
        except Exception as exc:
            raise CondorError(
                f"cannot locate schedd {name!r} via {self.collector_address}: {exc}" + self.identity
            ) from exc
        if ad is None:
            # The bindings answer None, and Schedd(None) would quietly mean "the local one".
            raise CondorError(
                f"schedd {name!r} is not in the collector {self.collector_address}: stopped, "
                "or not advertising"
            )
        return htcondor2.Schedd(ad)

    def idle_jobs(
        self, schedd: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        # Client-side clustering after a projected query, rather than the schedd's
        # AutoCluster query: autocluster ads count running jobs too and carry only the
        # schedd's own significant attributes, so a request's constraint on, say,
        # AcctGroup could not be evaluated on them.
        return self.query_idle(self.schedd(schedd), schedd, constraint, projection)

    def query_idle(
        self, located: htcondor2.Schedd, name: str, constraint: str, projection: Sequence[str]
    ) -> list[classad2.ClassAd]:
        """``idle_jobs`` once the schedd is located (asks the schedd only); apart so that
        ``isolated.py`` can tell which of the two daemons did not answer."""
        try:
            return list(
                located.query(
                    constraint=f"JobStatus == 1 && ({constraint})", projection=list(projection)
                )
            )
        except Exception as exc:
            raise CondorError(f"query of schedd {name!r} failed: {exc}{self.identity}") from exc

    def slot_ads(self, constraint: str, projection: Sequence[str]) -> list[classad2.ClassAd]:
        try:
            return list(
                self._collector.query(
                    htcondor2.AdType.Startd, constraint=constraint, projection=list(projection)
                )
            )
        except Exception as exc:
            raise CondorError(
                f"query of collector {self.collector_address} failed: {exc}{self.identity}"
            ) from exc

    def ping(self, authz: str) -> classad2.ClassAd:
        """``condor_ping -type collector <authz>``: authenticate to the collector with this
        pool's token (the preferred token of its security context) and ask whether it
        authorizes ``authz``, a permission level (``ADVERTISE_STARTD``) or a command. The
        collector's answer ad (``MyRemoteUserName``: who it took us for), or CondorError
        with the collector's own words when it refuses. Turns on this process's security
        log (to read those words): meant for a process of its own (``isolated.py``)."""
        log = _log_security(self._folder)
        address = sinful(self.collector_address)
        start = log.stat().st_size if log.exists() else 0
        try:
            ad = htcondor2.ping(address, authz, self._security)
        except Exception as exc:
            said = ""
            if log.exists():
                with log.open(errors="replace") as handle:
                    handle.seek(start)
                    said = refusal_words(handle.read())
            # Without self.identity: the caller knows what it offered, and the words say
            # what was wrong with it (or that the collector did not answer at all).
            raise CondorError(
                f"collector {self.collector_address} refused {authz}: {said or exc}"
            ) from exc
        if not ad.get("AuthorizationSucceeded", False):
            raise CondorError(
                f"collector {self.collector_address} authenticated "
                f"{ad.get('MyRemoteUserName', 'us')} but does not authorize {authz}"
            )
        return ad
