"""Shards: several operators on one cluster, each with the GlideinRequests it owns.

An operator that has outgrown one process is run as several releases of the chart, each
a shard: its own ``operatorId`` (written on every pilot, so a shard lists, reaps,
accounts and collects only its own pilots, key pairs and kept credentials included), its
own Lease (an active/standby pair per shard), and the requests it owns, chosen by
namespace (``run --namespace``) and/or a label selector (``GLIDEIN_REQUEST_SELECTOR``).
The cluster-scoped kinds are shared, so a shard's marks on them carry its name: its
finalizer and kopf's progress annotations (a shard that finished deleting an entry must
not let go of the others' pilots there). Per-shard pilot counts would overwrite each
other in a CloudEntry's ``.status.pilots``: a shard leaves that field alone.
"""

from __future__ import annotations

import re

import kopf
from kopf._core.intents.filters import MetaFilterToken as Token  # not exported by kopf

from glidein_operator.api.base import API_GROUP

_KEY = r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")


def labels(selector: str | None) -> dict[str, str | Token] | None:
    """A label selector in kubectl's equality form (``tier=gold,shard,!legacy``) as kopf's
    label filter; None selects everything. Set-based forms (``in``, ``notin``) are refused
    by name rather than read wrongly."""
    if not selector or not selector.strip():
        return None
    out: dict[str, str | Token] = {}
    for term in (t.strip() for t in selector.split(",")):
        if term.startswith("!") and re.fullmatch(_KEY, term[1:]):
            out[term[1:]] = kopf.ABSENT
        elif "!=" in term:
            raise ValueError(f"request selector {term!r}: only key=value, key and !key")
        elif "=" in term:
            key, _, value = term.replace("==", "=", 1).partition("=")
            key, value = key.strip(), value.strip()
            if not re.fullmatch(_KEY, key) or not re.fullmatch(_VALUE, value):
                raise ValueError(f"request selector {term!r}: not a label key=value")
            out[key] = value
        elif re.fullmatch(_KEY, term):
            out[term] = kopf.PRESENT
        else:
            raise ValueError(f"request selector {term!r}: only key=value, key and !key")
    return out


def check_name(shard: str | None) -> str | None:
    if shard is not None and not _NAME.fullmatch(shard):
        raise ValueError(f"shard {shard!r}: lowercase letters, digits and '-', at most 40")
    return shard or None


def finalizer(shard: str | None) -> str:
    return f"{API_GROUP}/finalizer" if not shard else f"{API_GROUP}/finalizer-{shard}"


def annotation_prefix(shard: str | None) -> str:
    return API_GROUP if not shard else f"{shard}.shard.{API_GROUP}"
