"""The four kinds: names, scope, models and how ``kubectl get`` shows them.

The CRD generator (``crdgen``: names, short names, columns, schema), ``objects.parse``
(which model a kind's spec is, for the admission webhook and ``glidein-operator plan``),
the tests and the development kit read this table, so a kind is described once for
them. Three places spell the plurals themselves and must follow a change here by hand:
the kopf handlers (``controller/handlers.py``: decorator arguments, which
``tests/unit/test_conditions_doc.py`` reads as literals), the ``check`` command
(``controller/check.py``), and the Helm chart's RBAC rules
(``helm/glidein-operator/templates/rbac.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from glidein_operator.api.base import API_GROUP, API_VERSION, ApiModel
from glidein_operator.api.cloudentry import CloudEntrySpec, CloudEntryStatus
from glidein_operator.api.glideinrequest import GlideinRequestSpec, GlideinRequestStatus
from glidein_operator.api.trustdomain import TrustDomainSpec, TrustDomainStatus
from glidein_operator.api.vmimage import VMImageSpec, VMImageStatus

CATEGORY = "glidein"
READY = '.status.conditions[?(@.type=="Ready")].status'
REASON = '.status.conditions[?(@.type=="Ready")].reason'


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0

    def as_crd(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


# Short names are typed at a shell next to other operators' kinds, so each is ours alone:
# a "g" (glidein.dev) and the kind, never a word another project claims. `ce` is an
# HTCondor-CE to our users, `vmi` is KubeVirt's VirtualMachineInstance, `gr` and `td` say
# nothing. tests/unit/test_crd_names_and_defaults.py holds them to a list of well-known
# short names.


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    spec: type[ApiModel]
    status: type[ApiModel]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group(self) -> str:
        return API_GROUP

    @property
    def version(self) -> str:
        return API_VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"


def _ready_columns() -> tuple[PrinterColumn, ...]:
    return (
        PrinterColumn("Ready", READY, description="Whether the resource is usable."),
        PrinterColumn("Reason", REASON, description="Why it is (not) ready.", priority=1),
        PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
    )


GLIDEIN_REQUEST = Kind(
    kind="GlideinRequest",
    plural="glideinrequests",
    short_names=("greq",),
    scope="Namespaced",
    spec=GlideinRequestSpec,
    status=GlideinRequestStatus,
    description=(
        "A community's request for pilots: which schedds' idle jobs count, which entries may "
        "serve them, with which credentials, pilot settings, limits and budget."
    ),
    columns=(
        PrinterColumn("Idle Jobs", ".status.totals.idleJobs", "integer", "Idle jobs served."),
        PrinterColumn("Wanted", ".status.totals.wanted", "integer", "Pilots the plan wants."),
        PrinterColumn("Launching", ".status.totals.launching", "integer", "Pilots booting."),
        PrinterColumn("Running", ".status.totals.running", "integer", "Pilots running jobs."),
        PrinterColumn("Idle", ".status.totals.idle", "integer", "Pilots idle.", priority=1),
        PrinterColumn("Spent", ".status.spend.spent", "number", "Spend this period.", priority=1),
        PrinterColumn(
            "Budget Left", ".status.spend.left", "number", "Budget left this period.", priority=1
        ),
        *_ready_columns(),
    ),
)

CLOUD_ENTRY = Kind(
    kind="CloudEntry",
    plural="cloudentries",
    short_names=("gentry",),
    scope="Cluster",
    spec=CloudEntrySpec,
    status=CloudEntryStatus,
    description="A place pilots start and how: an EC2, OpenStack or OpenNebula cloud, a grid CE, or pods.",
    columns=(
        PrinterColumn("Type", ".spec.type"),
        PrinterColumn("Site", ".spec.site"),
        PrinterColumn("Trust Domain", ".spec.trustDomain"),
        PrinterColumn("Enabled", ".spec.enabled", "boolean"),
        PrinterColumn("Pilots", ".status.pilots", "integer", "Pilots alive here."),
        *_ready_columns(),
    ),
)

TRUST_DOMAIN = Kind(
    kind="TrustDomain",
    plural="trustdomains",
    short_names=("gtd",),
    scope="Cluster",
    spec=TrustDomainSpec,
    status=TrustDomainStatus,
    description="A group of entries that accept the same credential types.",
    columns=(
        PrinterColumn("Credential Types", ".spec.credentialTypes"),
        PrinterColumn("Entries", ".status.entries", "integer"),
        *_ready_columns(),
    ),
)

VM_IMAGE = Kind(
    kind="VMImage",
    plural="vmimages",
    short_names=("gvmi",),
    scope="Cluster",
    spec=VMImageSpec,
    status=VMImageStatus,
    description="A pilot VM image: who owns and patches it, its version, and where it is staged.",
    columns=(
        PrinterColumn("Version", ".spec.version"),
        PrinterColumn("Owner", ".spec.owner.name"),
        PrinterColumn("Patched", ".spec.patchDate"),
        PrinterColumn(
            "Patch Age", ".status.patchedAt", "date", "Time since the last security patch."
        ),
        PrinterColumn("Deprecated", ".spec.deprecated", "boolean", priority=1),
        *_ready_columns(),
    ),
)

KINDS: tuple[Kind, ...] = (GLIDEIN_REQUEST, CLOUD_ENTRY, TRUST_DOMAIN, VM_IMAGE)
KINDS_BY_NAME: dict[str, Kind] = {k.kind: k for k in KINDS}
