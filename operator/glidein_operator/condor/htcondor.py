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
        security = None
        if token:
            claims = idtokens.claims(token)
            self.identity = (
                f" (offering a token for {claims.get('sub')} issued by {claims.get('iss')}: "
                "is that the pool's TRUST_DOMAIN, and its signing key?)"
            )
            _store_token(folder, collector, token)
            security = htcondor2.SecurityContext(token)
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
