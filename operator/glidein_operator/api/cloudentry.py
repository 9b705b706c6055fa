"""CloudEntry: one place pilots start, and how (the factory entry of GlideinWMS).

An entry names its back end (``type``) and carries exactly the one section for it. What
an entry offers (instance types with cpus, memory, disk, price) becomes the machine ad
that jobs' Requirements are evaluated against.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from glidein_operator.api.base import (
    ApiModel,
    ByteQuantity,
    CelRule,
    Conditions,
    Int,
    ListMap,
    Money,
    NamespaceName,
    ObjectName,
    SecretKeyRef,
    conditions_field,
)
from glidein_operator.api.classad import AttributeMap, ConfigClassAdExpression, SubmitCommands

EntryType = Literal["ec2", "openstack", "opennebula", "grid", "kubernetes"]
ENTRY_TYPES: tuple[str, ...] = ("ec2", "openstack", "opennebula", "grid", "kubernetes")
VM_ENTRY_TYPES: tuple[str, ...] = ("ec2", "openstack", "opennebula")


class InstanceType(ApiModel):
    """A machine shape the entry can start (EC2 instance type, OpenStack flavour, template)."""

    name: str = Field(
        min_length=1,
        max_length=128,
        description=(
            "The cloud's name for it: EC2 instance type (m5.large), OpenStack flavour, "
            "OpenNebula template size label, or a label for grid/pod shapes."
        ),
    )
    cpus: Int = Field(ge=1, le=1024, description="Cores a pilot of this type offers.")
    memory: ByteQuantity = Field(description="Memory, as a quantity (e.g. 16Gi).")
    disk: ByteQuantity = Field(
        default="20Gi", description="Scratch disk for jobs, as a quantity (e.g. 100Gi)."
    )
    gpus: Int = Field(default=0, ge=0, le=64, description="GPUs a pilot of this type offers.")
    # Absent is unknown, not free, on the clouds one pays for: a budget cannot count what
    # a pilot there costs, so a request with a budget does not launch there (eligibility).
    price_per_hour: Money | None = Field(
        default=None,
        description=(
            "On-demand price per hour, in the budget's currency. On ec2, openstack and "
            "opennebula entries an absent price is unknown, not free: a GlideinRequest with "
            "a budget does not launch there (its EntriesBlocked condition names the entry), "
            "and placement: cost ranks it last. Write 0 for a cloud that costs nothing "
            "(owned hardware). Grid and kubernetes entries are free when absent."
        ),
    )


class SpotOptions(ApiModel):
    """Spot (preemptible) instances: cheaper, may be interrupted."""

    enabled: bool = Field(default=False, description="Launch pilots as spot instances.")
    max_price_per_hour: Money | None = Field(
        default=None,
        description="Highest spot price to pay per hour; absent means on-demand price.",
    )
    fall_back_to_on_demand: bool = Field(
        default=True,
        description="On insufficient spot capacity, launch on-demand instead of waiting.",
    )


class EntryLimits(ApiModel):
    """Limits the entry's admins set, whatever the requests ask for."""

    max_pilots: Int | None = Field(
        default=None, ge=0, description="Most pilots alive at this entry, all requests together."
    )
    max_idle_pilots: Int | None = Field(
        default=None,
        ge=0,
        description="Most pilots launched but not yet running jobs (booting or idle) at once.",
    )
    max_launch_per_cycle: Int = Field(
        default=100,
        ge=1,
        le=10000,
        description="Most pilots started in one reconcile cycle (batch size).",
    )
    launches_per_minute: Int = Field(
        default=600, ge=1, description="Rate limit on launch calls to this entry's API."
    )

    cel_rules = (
        CelRule(
            "!has(self.maxPilots) || !has(self.maxIdlePilots) || self.maxIdlePilots <= self.maxPilots",
            "maxIdlePilots must not exceed maxPilots",
            ".maxIdlePilots",
        ),
    )

    @model_validator(mode="after")
    def _idle_within_total(self) -> EntryLimits:
        if (
            self.max_pilots is not None
            and self.max_idle_pilots is not None
            and self.max_idle_pilots > self.max_pilots
        ):
            raise ValueError("maxIdlePilots must not exceed maxPilots")
        return self


KeyPairs = Literal["perBatch", "perVM"]
KEY_PAIRS_DESCRIPTION = (
    "SSH key pairs for the VMs. perBatch: a fresh key pair per launch batch, one launch "
    "call for the whole batch; a leaked key opens the VMs of that batch (at most "
    "maxLaunchPerCycle). perVM: a key pair per VM, so a leaked key opens one VM, at the "
    "cost of one launch call (and one key pair) per VM: a batch of N takes N calls, "
    "which reaches the cloud's API rate limit and launchesPerMinute N times sooner. "
    "Either way the private half is never kept, and key pairs are deleted with their VMs."
)


class Ec2Compatibility(ApiModel):
    """What an EC2-compatible endpoint lacks of the EC2 Query API (older clouds: Eucalyptus,
    OpenStack's EC2 API, private EC2 look-alikes). Every feature defaults to present, as on
    AWS; set one false only when the endpoint refuses it."""

    tags_at_launch: bool = Field(
        default=True,
        description=(
            "RunInstances (and CreateKeyPair) take TagSpecifications, so a VM carries the "
            "operator's ownership tags from its first moment. false: launch untagged, then "
            "tag the instances and the key pair with CreateTags (one more call per launch; "
            "volumes stay untagged and go with their instances). A crash between the two "
            "calls leaves untagged instances: the operator still finds them by their key "
            "pair (named after the batch and tagged before the launch) and tags them at its "
            "next listing, which costs a DescribeKeyPairs and a DescribeInstances more per "
            "listing."
        ),
    )
    client_token: bool = Field(
        default=True,
        description=(
            "RunInstances takes a ClientToken, so a retried launch (a lost reply, a crash "
            "before the status was written) returns the first call's instances instead of "
            "starting more. false: before each launch the operator lists the instances "
            "carrying the batch's key pair name (set at creation) and launches only if "
            "there are none: one more DescribeInstances per launch, and the SDK's own "
            "retries of RunInstances are turned off, since a retried call without a token "
            "could start the batch twice (a failed launch is tried again at the next "
            "cycle instead)."
        ),
    )
    imds_v2: bool = Field(
        default=True,
        description=(
            "The instance metadata service hands out session tokens (IMDSv2), and "
            "RunInstances takes MetadataOptions: pilots are launched with tokens required, "
            "so a job on a pilot cannot read the metadata (user data, any instance role's "
            "credentials) by a plain GET, the usual SSRF path. false: no MetadataOptions "
            "at launch, and the pilot, whose token request the metadata service refuses "
            "(404, 405 or 403), reads it with IMDSv1 GETs; anything on the VM can then "
            "read the user data and instance credentials."
        ),
    )


class Ec2Settings(ApiModel):
    """Where and how to start EC2 (or EC2-compatible) instances."""

    region: str = Field(min_length=1, max_length=64, description="Region, e.g. us-east-1.")
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=2048,
        description="EC2 API endpoint for EC2-compatible clouds; absent means AWS.",
    )
    availability_zone: str | None = Field(default=None, max_length=64, description="Zone to pin.")
    subnet_id: str | None = Field(default=None, max_length=256, description="Subnet for pilots.")
    security_group_ids: list[str] = Field(
        default_factory=list, description="Security groups attached to every pilot."
    )
    instance_profile: str | None = Field(
        default=None, max_length=2048, description="IAM instance profile name or ARN."
    )
    key_pairs: KeyPairs = Field(default="perBatch", description=KEY_PAIRS_DESCRIPTION)
    compatibility: Ec2Compatibility = Field(
        default_factory=Ec2Compatibility,
        description=(
            "Parts of the EC2 API an EC2-compatible endpoint lacks; absent means all are "
            "there, as on AWS."
        ),
    )


class OpenStackSettings(ApiModel):
    """Where and how to start OpenStack servers."""

    auth_url: str = Field(
        pattern=r"^https?://",
        max_length=2048,
        description="Keystone v3 URL, e.g. https://keystone:5000/v3.",
    )
    region: str = Field(min_length=1, max_length=64, description="Region name (RegionOne).")
    project_name: str | None = Field(
        default=None, max_length=256, description="Project to launch in."
    )
    project_domain: str = Field(default="Default", max_length=256, description="Project's domain.")
    user_domain: str = Field(default="Default", max_length=256, description="User's domain.")
    network_ids: list[str] = Field(default_factory=list, description="Networks to attach.")
    security_groups: list[str] = Field(default_factory=list, description="Security group names.")
    availability_zone: str | None = Field(default=None, max_length=64, description="Zone to pin.")
    config_drive: bool = Field(
        default=False,
        description="Pass user data on a config drive too, for clouds without a metadata service.",
    )
    key_pairs: KeyPairs = Field(default="perBatch", description=KEY_PAIRS_DESCRIPTION)


class OpenNebulaSettings(ApiModel):
    """Where and how to instantiate OpenNebula VMs."""

    endpoint: str = Field(
        pattern=r"^https?://",
        max_length=2048,
        description="XML-RPC endpoint, e.g. http://one:2633/RPC2.",
    )
    zone: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        description="Label of this OpenNebula zone, matched against VMImage locations.",
    )
    template_id: Int = Field(ge=0, description="VM template to instantiate.")
    network_ids: list[Int] = Field(default_factory=list, description="Virtual networks to attach.")


class GridSubmitter(ApiModel):
    """The schedd whose gridmanager sends grid pilots to the site.

    The operator always reaches it the same way, by collector and name with an IDTOKEN,
    whoever runs it: the Helm chart (``gridSubmitter.enabled``, as a GlideinWMS factory runs
    its own schedds) or the site admins (any schedd with HTCondor-C's gridmanager). The
    operator does not run one in its own pod: grid jobs live in the schedd's spool, which
    must outlast the operator's replicas and their failovers."""

    collector: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[^\s,]+$",
        description="Collector (host[:port]) the submitting schedd advertises to.",
    )
    schedd: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\s,]+$",
        description="The submitting schedd's Name as its collector advertises it.",
    )
    trust_domain: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^[^\s,]+$",
        description=(
            "The submitting schedd's TRUST_DOMAIN (the issuer of its tokens). Absent: the "
            "collector address, HTCondor's default ($(COLLECTOR_HOST))."
        ),
    )
    token_secret_ref: SecretKeyRef = Field(
        description=(
            "Secret in the operator's namespace holding either `token`, an IDTOKEN the "
            "submitting schedd issued with WRITE authorization (condor_token_create "
            "-identity glidein@<domain> -authz WRITE), or `signingKey`, its POOL signing key, "
            "from which the operator mints such a token for `user` itself. The token's "
            "identity is the pilots' Owner there; as root the schedd needs a local account "
            "of that name."
        )
    )
    user: str = Field(
        default="glidein",
        min_length=1,
        max_length=64,
        pattern=r"^[a-z_][a-z0-9_.-]*$",
        description="The Owner of grid pilots at the submitting schedd, when minting.",
    )
    credential_dir: str = Field(
        default="/var/lib/condor/grid-credentials",
        min_length=1,
        max_length=512,
        pattern=r"^/",
        description=(
            "Where the submitting schedd keeps the SciTokens the operator hands it "
            "(through the Secret GLIDEIN_GRID_CREDENTIALS_SECRET names, which the chart's "
            "submitter mounts and syncs); a scitoken credential's job names its file there."
        ),
    )


class GridSettings(ApiModel):
    """A grid compute entrypoint reached through HTCondor-G (HTCondor-C for HTCondor-CE).

    Tested here on real HTCondor daemons: ceType condor (HTCondor-C, what HTCondor-CE
    speaks) with IDTOKENS. batch and arc are handed to the submitting schedd's gridmanager
    as written (they need its blahp or ARC GAHP)."""

    ce_type: Literal["condor", "arc", "batch"] = Field(
        description=(
            "Kind of entrypoint: HTCondor-CE or any schedd through HTCondor-C (condor), "
            "ARC-CE (arc), or a batch system the submitting schedd's blahp reaches (batch)."
        )
    )
    endpoint: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[^\s,]+$",
        description=(
            "The entrypoint's host[:port]; for condor, its collector (ce.example.org:9619 "
            "for an HTCondor-CE, the default port 9619 when absent)."
        ),
    )
    schedd_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[^\s,]+$",
        description=(
            "For condor: the entrypoint schedd's Name in its collector. Absent: the "
            "endpoint's host, which is how an HTCondor-CE names its schedd. The pilots' "
            "grid_resource is `condor <scheddName> <endpoint>`."
        ),
    )
    submitter: GridSubmitter | None = Field(
        default=None,
        description=(
            "The submitting schedd, with its gridmanager, that sends pilots here: one the "
            "site admins run, or the one the Helm chart runs (gridSubmitter.enabled), as a "
            "GlideinWMS factory runs its own; never one in the operator's pod, since grid "
            "jobs live in its spool, which must outlast the operator's replicas and their "
            "failovers. Absent: the chart's (the operator learns it from "
            "GLIDEIN_GRID_SUBMITTER); with neither, the entry is blocked, saying so."
        ),
    )
    condor_tarball_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^(https?|file)://\S+$",
        description=(
            "An HTCondor release tarball (one top folder with sbin/, bin/, lib/) the pilot "
            "unpacks in its batch slot, fetched by HTCondor's curl plugin at the site. "
            "Absent: the worker nodes have HTCondor on PATH. Nothing else is needed there "
            "but a POSIX shell and Python 3: the pilot comes with the job."
        ),
    )
    queue: str | None = Field(
        default=None, max_length=128, description="Queue or partition at the CE."
    )
    batch_system: Literal["slurm", "pbs", "sge", "lsf", "condor"] | None = Field(
        default=None, description="Batch system behind a batch-type CE."
    )
    submit_attributes: Annotated[dict[str, str], SubmitCommands()] = Field(
        default_factory=dict,
        description=(
            "Extra submit-description commands for the grid job (e.g. +maxWallTime). Those "
            "setting a job attribute (+Name, MY.Name) take a ClassAd expression, checked "
            "with HTCondor's ClassAd parser."
        ),
    )

    cel_rules = (
        CelRule(
            "(self.ceType == 'batch') == has(self.batchSystem)",
            "batchSystem must be set when ceType is batch, and only then",
            ".batchSystem",
        ),
    )

    @model_validator(mode="after")
    def _batch_system_for_batch(self) -> GridSettings:
        if (self.ce_type == "batch") != (self.batch_system is not None):
            raise ValueError("batchSystem must be set when ceType is batch, and only then")
        return self


class KubernetesSettings(ApiModel):
    """Pilots as pods on this or another cluster."""

    namespace: NamespaceName = Field(description="Namespace the pilot pods run in.")
    pilot_image: str = Field(
        min_length=1,
        max_length=1024,
        description="Container image of the pilot (see images/pilot-pod).",
    )
    service_account_name: ObjectName | None = Field(
        default=None, description="Service account of pilot pods."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels pilot pods must land on."
    )
    priority_class_name: ObjectName | None = Field(default=None, description="Priority class.")
    runtime_class_name: ObjectName | None = Field(default=None, description="Runtime class.")
    host_network: bool = Field(
        default=False,
        description=(
            "Pilot pods use their node's network instead of a pod network: for nodes without "
            "a pod network, or a pool whose schedds reach only the nodes' addresses. The "
            "startd then advertises the node's address and listens on the node's ports "
            "(with a GlideinRequest's pilot.sharedPort, port 9618: one pilot per node)."
        ),
    )
    pilot_group: int = Field(
        default=64,
        ge=1,
        le=2**31 - 1,
        description=(
            "Group id of the pilot image's user (64: the condor group of HTCondor's images "
            "and of images/pilot-pod). The pod's fsGroup: the payload Secret is mounted "
            "readable by this group only, so the non-root pilot can read it and no other "
            "user of the image can."
        ),
    )


class CloudEntrySpec(ApiModel):
    """Where and how pilots start, what they offer, and the entry's own limits."""

    type: EntryType = Field(description="Back end: ec2, openstack, opennebula, grid or kubernetes.")
    trust_domain: ObjectName = Field(
        description="Name of the TrustDomain this entry belongs to (which credentials it accepts)."
    )
    site: str = Field(
        min_length=1,
        max_length=128,
        description="Site name, advertised as GLIDEIN_Site for jobs' DESIRED_Sites matching.",
    )
    enabled: bool = Field(
        default=True, description="A disabled entry starts nothing new; its pilots finish."
    )
    vm_image: ObjectName | None = Field(
        default=None,
        description="Name of the VMImage pilots boot from (required for ec2, openstack, opennebula).",
    )
    instance_types: Annotated[list[InstanceType], ListMap(("name",))] = Field(
        min_length=1,
        max_length=64,
        description=(
            "Machine shapes this entry offers, one item per name; the smallest that fits a "
            "job cluster is used."
        ),
    )
    attributes: Annotated[dict[str, ConfigClassAdExpression], AttributeMap()] = Field(
        default_factory=dict,
        description=(
            "Extra ClassAd attributes of this entry's machine ad, as ClassAd expressions, "
            'e.g. {HAS_SINGULARITY: "true", GLIDEIN_Country: "\\"US\\""}. Names are '
            "ClassAd attribute names; values one line each, checked with HTCondor's ClassAd "
            "parser."
        ),
    )
    limits: EntryLimits = Field(default_factory=EntryLimits, description="The entry's own limits.")
    spot: SpotOptions | None = Field(default=None, description="Spot instances (ec2 only).")
    ec2: Ec2Settings | None = Field(default=None, description="EC2 settings, for type ec2.")
    openstack: OpenStackSettings | None = Field(
        default=None, description="OpenStack settings, for type openstack."
    )
    opennebula: OpenNebulaSettings | None = Field(
        default=None, description="OpenNebula settings, for type opennebula."
    )
    grid: GridSettings | None = Field(default=None, description="Grid CE settings, for type grid.")
    kubernetes: KubernetesSettings | None = Field(
        default=None, description="Pod settings, for type kubernetes."
    )

    cel_rules = (
        *(
            CelRule(
                f"(self.type == '{t}') == has(self.{t})",
                f"the {t} section must be set when type is {t}, and only then",
                f".{t}",
            )
            for t in ENTRY_TYPES
        ),
        CelRule(
            "(self.type in ['ec2', 'openstack', 'opennebula']) == has(self.vmImage)",
            "vmImage must be set for ec2, openstack and opennebula entries, and only for them",
            ".vmImage",
        ),
        CelRule(
            "!has(self.spot) || self.type == 'ec2'", "spot applies to ec2 entries only", ".spot"
        ),
    )

    @model_validator(mode="after")
    def _one_section_for_the_type(self) -> CloudEntrySpec:
        for t in ENTRY_TYPES:
            if (self.type == t) != (getattr(self, t) is not None):
                raise ValueError(f"the {t} section must be set when type is {t}, and only then")
        if (self.type in VM_ENTRY_TYPES) != (self.vm_image is not None):
            raise ValueError(
                "vmImage must be set for ec2, openstack and opennebula entries, and only for them"
            )
        if self.spot is not None and self.type != "ec2":
            raise ValueError("spot applies to ec2 entries only")
        if self.type not in VM_ENTRY_TYPES:
            for itype in self.instance_types:
                if itype.price_per_hour is None:
                    itype.price_per_hour = Decimal(0)  # a grid slot or a pod bills no hour
        return self

    def unpriced(self) -> list[str]:
        """Instance types whose price is unknown (none written, on a cloud one pays)."""
        return [it.name for it in self.instance_types if it.price_per_hour is None]

    @property
    def image_region(self) -> str | None:
        """The region label under which this entry's VMImage must have a location."""
        if self.ec2:
            return self.ec2.region
        if self.openstack:
            return self.openstack.region
        if self.opennebula:
            return self.opennebula.zone
        return None

    def instance_type(self, name: str) -> InstanceType | None:
        return next((it for it in self.instance_types if it.name == name), None)


class CloudEntryStatus(ApiModel):
    """What the operator observed about this entry."""

    observed_generation: Int | None = Field(
        default=None, ge=0, description="The .metadata.generation last reconciled."
    )
    pilots: Int | None = Field(
        default=None, ge=0, description="Pilots alive at this entry, all requests together."
    )
    conditions: Conditions = conditions_field()
