"""Where the payload arrives, per back end (the seeds' pain: it differs on every cloud).

* EC2: the instance metadata service, IMDSv2 (a session token first, then user data and
  the AMI launch index, our pilot index). Older EC2-compatible clouds have no tokens and
  refuse the token PUT (404, 405, or 403 as AWS's SDKs also accept): the same GETs,
  without the token (IMDSv1).
* OpenStack: the metadata service (``/openstack/latest``) or, where there is none, the
  config drive (a disk labelled config-2) with the same files; the server's name
  (``glidein-{batch}-{n}``) gives the index.
* OpenNebula: no metadata server; the context disk carries ``context.sh`` with
  ``USER_DATA`` (base64) and ``GLIDEIN_PILOT_ID``.
* Pods and grid jobs: environment (``GLIDEIN_PAYLOAD_FILE`` or ``GLIDEIN_PAYLOAD``, and
  ``GLIDEIN_PILOT_ID``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

METADATA_URL = "http://169.254.169.254"
# The AWS SDKs' and CLI's standard override of the metadata endpoint; honoured so that a
# pilot can be pointed at another IMDS the way any AWS tool is.
METADATA_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"


def metadata_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get(METADATA_ENV) or METADATA_URL).rstrip("/")


CONTEXT_PATHS = (
    Path("/var/run/one-context/context.sh"),
    Path("/mnt/context/context.sh"),
    Path("/media/context/context.sh"),
)
CONFIG_DRIVE_PATHS = (Path("/mnt/config"), Path("/media/configdrive"), Path("/config-2"))


class SourceError(RuntimeError):
    pass


@dataclass(frozen=True)
class Context:
    raw: bytes
    source: str
    index: int | None = None
    pilot_id: str | None = None
    name: str | None = None  # the server's name (OpenStack), read against the batch key

    def resolve_pilot_id(self, batch: str) -> str:
        """Our pilot id, from whatever this source knows, and the payload's batch key."""
        if self.pilot_id:
            return self.pilot_id
        if self.index is not None:
            return f"{batch}-{self.index}"
        if self.name:
            # Nova names a multi-create glidein-{batch}-1..N, a single server glidein-{batch}.
            m = re.fullmatch(rf"glidein-{re.escape(batch)}(?:-(\d+))?", self.name)
            if m and m.group(1):
                return f"{batch}-{int(m.group(1)) - 1}"
        return f"{batch}-0"


def _http(
    url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None, timeout: float = 2
) -> bytes:
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}))  # noqa: S310
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        return bytes(resp.read())


# What a metadata service without session tokens answers the token PUT (AWS's SDKs fall
# back to IMDSv1 on the same three): 404 no such path, 405 no PUT, 403 tokens disabled.
IMDSV1_REFUSALS = (403, 404, 405)


def from_ec2(base: str = METADATA_URL, *, v1_fallback: bool = True) -> Context:
    """IMDSv2; IMDSv1 when the token PUT is refused as older clouds refuse it (and
    ``v1_fallback``). Any other failure of the PUT (a timeout, a 5xx) is raised."""
    try:
        token = _http(
            f"{base}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
        ).decode()
    except urllib.error.HTTPError as exc:
        if not v1_fallback or exc.code not in IMDSV1_REFUSALS:
            raise
        return _ec2_context(base, {}, "ec2-imdsv1")
    return _ec2_context(base, {"X-aws-ec2-metadata-token": token}, "ec2-imdsv2")


def _ec2_context(base: str, auth: Mapping[str, str], source: str) -> Context:
    raw = _http(f"{base}/latest/user-data", headers=auth)
    index = int(
        _http(f"{base}/latest/meta-data/ami-launch-index", headers=auth).decode().strip() or 0
    )
    return Context(raw, source, index=index)


def from_ec2_imdsv2(base: str = METADATA_URL) -> Context:
    return from_ec2(base, v1_fallback=False)


def from_ec2_imdsv1(base: str = METADATA_URL) -> Context:
    """Plain GETs, whatever the token PUT would say (the last resort of ``discover``)."""
    return _ec2_context(base, {}, "ec2-imdsv1")


def _openstack_context(user_data: bytes, meta: dict[str, object], source: str) -> Context:
    return Context(user_data, source, name=str(meta.get("name", "")) or None)


def from_openstack_metadata(base: str = METADATA_URL) -> Context:
    raw = _http(f"{base}/openstack/latest/user_data")
    meta = json.loads(_http(f"{base}/openstack/latest/meta_data.json"))
    return _openstack_context(raw, meta, "openstack-metadata")


def from_config_drive(root: Path) -> Context:
    latest = root / "openstack" / "latest"
    if not (latest / "user_data").exists():
        raise SourceError(f"no user_data on the config drive at {root}")
    meta = (
        json.loads((latest / "meta_data.json").read_text())
        if (latest / "meta_data.json").exists()
        else {}
    )
    return _openstack_context((latest / "user_data").read_bytes(), meta, "openstack-config-drive")


def parse_context_sh(text: str) -> dict[str, str]:
    """OpenNebula's context.sh: ``KEY='value'`` lines (shell-quoted)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        parts = shlex.split(value) if value else [""]
        out[key.strip()] = parts[0] if parts else ""
    return out


def from_opennebula(path: Path) -> Context:
    values = parse_context_sh(path.read_text())
    data = values.get("USER_DATA", "")
    if not data:
        raise SourceError(f"{path} has no USER_DATA")
    raw = base64.b64decode(data) if values.get("USERDATA_ENCODING") == "base64" else data.encode()
    return Context(raw, "opennebula-context", pilot_id=values.get("GLIDEIN_PILOT_ID") or None)


def from_environment(env: Mapping[str, str]) -> Context | None:
    pilot_id = env.get("GLIDEIN_PILOT_ID") or None
    if env.get("GLIDEIN_PAYLOAD_FILE"):
        return Context(Path(env["GLIDEIN_PAYLOAD_FILE"]).read_bytes(), "pod", pilot_id=pilot_id)
    if env.get("GLIDEIN_PAYLOAD"):
        return Context(base64.b64decode(env["GLIDEIN_PAYLOAD"]), "grid", pilot_id=pilot_id)
    return None


def discover(
    env: Mapping[str, str] | None = None,
    metadata_url: str = METADATA_URL,
    context_paths: tuple[Path, ...] = CONTEXT_PATHS,
    config_drives: tuple[Path, ...] = CONFIG_DRIVE_PATHS,
) -> Context:
    """Try each source, cheapest and most specific first."""
    env = os.environ if env is None else env
    found = from_environment(env)
    if found:
        return found
    for path in context_paths:
        if path.exists():
            return from_opennebula(path)
    for root in config_drives:
        if (root / "openstack" / "latest" / "user_data").exists():
            return from_config_drive(root)
    errors = []
    # IMDSv1 last: Nova's metadata service also serves EC2's paths without a token, and an
    # OpenStack server's index is its name's, not Nova's launch index.
    for reader in (from_ec2_imdsv2, from_openstack_metadata, from_ec2_imdsv1):
        try:
            return reader(metadata_url)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{reader.__name__}: {exc}")
    raise SourceError(
        "no payload found: no GLIDEIN_PAYLOAD(_FILE), no OpenNebula context, no config drive, "
        "no metadata service (" + "; ".join(errors) + ")"
    )
