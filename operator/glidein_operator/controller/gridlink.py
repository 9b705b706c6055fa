"""The operator's way to submitting schedds (``clouds.grid.Submitters``).

* The schedd: located through its collector, with an IDTOKEN from the Secret the entry's
  ``grid.submitter.tokenSecretRef`` names in the operator's namespace (``token`` as it is,
  or minted from ``signingKey`` for ``user``). Kept for a minute: a driver call is one
  schedd call, not a collector query and a Secret read each.
* The entrypoint's credential: an IDTOKEN or SciToken reaches the submitting schedd's host
  through one Secret of the operator's namespace (``GLIDEIN_GRID_CREDENTIALS_SECRET``),
  which the chart's submitter mounts and syncs into its gridmanager's token directory. The
  operator adds keys (named by a hash of the value, never by whose it is) and never reads a
  value back. Without that setting, a site admin's schedd must hold the credential itself.

Every method blocks (the driver calls them in its worker thread).
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import kubernetes as k8s

from glidein_operator.api.cloudentry import GridSubmitter
from glidein_operator.condor.grid import GridSchedd, HTCondorGridSchedd
from glidein_operator.condor.htcondor import HTCondorPool
from glidein_operator.condor.interface import CondorError
from glidein_operator.credentials import idtokens

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api

# A located schedd and its token are reused this long.
KEEP_SECONDS = 60.0
# Tokens the operator mints for itself at a submitting schedd live this long.
SUBMIT_TOKEN_LIFETIME = 24 * 3600


class GridLink:
    def __init__(
        self,
        core: CoreV1Api,
        namespace: str,
        *,
        credentials_secret: str | None,
        token_dir: Path | None = None,
    ) -> None:
        self.core = core
        self.namespace = namespace
        self.credentials_secret = credentials_secret
        self.token_dir = token_dir
        self._lock = threading.Lock()
        self._schedds: dict[tuple[str, str], tuple[GridSchedd, float]] = {}
        self._published: set[str] = set()

    def _token(self, submitter: GridSubmitter) -> str:
        ref = submitter.token_secret_ref
        where = f"Secret {self.namespace}/{ref.name} (grid.submitter.tokenSecretRef)"
        try:
            secret = self.core.read_namespaced_secret(ref.name, self.namespace)
        except k8s.client.exceptions.ApiException as exc:
            raise CondorError(f"cannot read {where}: {exc.status} {exc.reason}") from None
        data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        domain = submitter.trust_domain or submitter.collector
        if (ref.key or "signingKey") == "signingKey" and data.get("signingKey"):
            return idtokens.mint(
                data["signingKey"],
                identity=f"{submitter.user}@{idtokens.domain_of(domain)}",
                issuer=domain,
                lifetime=SUBMIT_TOKEN_LIFETIME,
                now=int(time.time()),
                scope="condor:/READ condor:/WRITE",
            )
        key = ref.key or "token"
        try:
            token = data.get(key, b"").decode("ascii").strip()
        except UnicodeDecodeError:
            token = ""
        if token.count(".") != 2:
            raise CondorError(f"{where} has neither signingKey nor an IDTOKEN under {key!r}")
        return token

    def schedd(self, submitter: GridSubmitter) -> GridSchedd:
        key = (submitter.collector, submitter.schedd)
        now = time.monotonic()
        with self._lock:
            found = self._schedds.get(key)
            if found and now < found[1]:
                return found[0]
        pool = HTCondorPool(submitter.collector, self._token(submitter), self.token_dir)
        schedd = HTCondorGridSchedd(pool.schedd(submitter.schedd), submitter.schedd)
        with self._lock:
            self._schedds[key] = (schedd, now + KEEP_SECONDS)
        return schedd

    def publish(self, name: str, content: bytes) -> None:
        if self.credentials_secret is None:
            return  # the submitting schedd is the site admins': they hold the credential
        with self._lock:
            if name in self._published:
                return
        where = f"Secret {self.namespace}/{self.credentials_secret}"
        try:
            secret = self.core.read_namespaced_secret(self.credentials_secret, self.namespace)
            if name not in (secret.data or {}):
                self.core.patch_namespaced_secret(
                    self.credentials_secret,
                    self.namespace,
                    {"data": {name: base64.b64encode(content).decode()}},
                )
        except k8s.client.exceptions.ApiException as exc:
            raise CondorError(
                f"cannot hand the entrypoint's credential to the submitting schedd through "
                f"{where} (GLIDEIN_GRID_CREDENTIALS_SECRET): {exc.status} {exc.reason}"
            ) from None
        with self._lock:
            self._published.add(name)
