"""Which entries can run which job clusters, with real ClassAd evaluation.

For every entry and instance type a machine ad is synthesised (what a pilot of that type
will advertise: Cpus, Memory, Disk, GPUs, Arch, OpSys, and what pilot/attributes.py says
for both ends: GLIDEIN_Site and the rest, the image's OS and provides, the entry's
attributes). A cluster matches an offer when the jobs' Requirements hold with
MY = job and TARGET = machine, the request's matchExpression holds with MY = machine and
TARGET = job, and one job's resources fit in the machine.

Cost. A naive match is clusters x offers ClassAd evaluations (2,000 x 600 = 1.2 M). But
an expression's value depends only on the attributes it reads, so offers are grouped by
the values of those attributes (a handful of shapes, a few hundred sites) and each
expression is evaluated once per group, with results memoised across clusters and kept
as bit masks over offers. The remaining per-pair work is integer masking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import classad2

from glidein_operator.api.base import parse_quantity
from glidein_operator.api.cloudentry import CloudEntrySpec, InstanceType
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.condor.classads import is_true
from glidein_operator.condor.jobs import JobCluster, referenced_names
from glidein_operator.money.pricing import launch_price
from glidein_operator.pilot import attributes

# The oldest HTCondor a pilot image may carry (docs/htcondor.md), as a startd says it.
ASSUMED_CONDOR_VERSION = "$CondorVersion: 24.0.0 2024-09-30 $"
# What the startd measures or states itself; the planner's values for these are the
# instance type's promise (or, for CondorVersion, an assumption), not advertised by the pilot.
STARTD_OWN = frozenset(
    {
        "MyType",
        "OpSys",
        "Arch",
        "Cpus",
        "TotalCpus",
        "Memory",
        "Disk",
        "GPUs",
        "HasFileTransfer",
        "CondorVersion",
    }
)
MIB = 2**20
KIB = 2**10


@dataclass(frozen=True)
class Offer:
    """One instance type at one entry: what a pilot launched there provides."""

    index: int
    entry: str
    instance_type: str
    cpus: int
    memory_mb: int
    disk_kb: int
    gpus: int
    price: Decimal | None  # None: unknown
    ad: classad2.ClassAd = field(repr=False, compare=False, hash=False)

    def jobs_per_pilot(self, cluster: JobCluster, partitionable: bool) -> int:
        """How many of the cluster's jobs one pilot runs at once (0: does not fit)."""
        fits = [self.cpus // max(1, cluster.cpus)]
        if cluster.memory_mb:
            fits.append(self.memory_mb // cluster.memory_mb)
        if cluster.disk_kb:
            fits.append(self.disk_kb // cluster.disk_kb)
        if cluster.gpus:
            fits.append(self.gpus // cluster.gpus)
        n = min(fits)
        return n if partitionable else min(n, 1)


def offer_of(
    entry: str, spec: CloudEntrySpec, itype: InstanceType, image: VMImageSpec | None
) -> attributes.Offer:
    """What a pilot of this type at this entry is, as jobs see it; the payload carries the
    same to the pilot (credentials/payloads.py), which advertises it."""
    return attributes.Offer(
        entry=entry,
        site=spec.site,
        trust_domain=spec.trust_domain,
        resource_type=spec.type,
        instance_type=itype.name,
        price_per_hour=None if (price := launch_price(spec, itype.name)) is None else float(price),
        cpus=itype.cpus,
        memory_mb=parse_quantity(itype.memory) // MIB,
        os_name=image.os.name if image and image.os else "",
        os_version=image.os.version if image and image.os else "",
        provides=dict(image.provides) if image else {},
        attributes=dict(spec.attributes),
    )


def machine_ad(
    entry: str, spec: CloudEntrySpec, itype: InstanceType, image: VMImageSpec | None
) -> classad2.ClassAd:
    """The ad a pilot of this type at this entry will advertise (before it boots): what
    the startd measures, as the instance type promises it, and what the pilot advertises
    from its payload (``attributes.offer_attributes``, shared with the pilot)."""
    ad = classad2.ClassAd()
    ad["MyType"] = "Machine"
    ad["OpSys"] = "LINUX"
    ad["Arch"] = image.arch if image else "X86_64"
    ad["Cpus"] = itype.cpus
    ad["TotalCpus"] = itype.cpus
    ad["Memory"] = parse_quantity(itype.memory) // MIB
    ad["Disk"] = parse_quantity(itype.disk) // KIB
    ad["GPUs"] = itype.gpus
    ad["HasFileTransfer"] = True
    # condor_submit 25.12+ writes Requirements that read the machine's version
    # (versionGE(split(TARGET.CondorVersion)[1], "25.12.0") || TARGET.Disk >= RequestDisk):
    # without one they evaluate to an error and no job would ever match. The oldest
    # HTCondor a pilot image may carry is assumed, so version-gated shortcuts are not
    # taken on trust and the plain resource checks apply.
    ad["CondorVersion"] = ASSUMED_CONDOR_VERSION
    for name, text in attributes.offer_attributes(offer_of(entry, spec, itype, image)).items():
        ad[name] = classad2.ExprTree(text)
    return ad


def offer_order(
    spec: CloudEntrySpec, itype: InstanceType
) -> tuple[bool, Decimal, int, int, int, int]:
    """Cheapest first (an unknown price last), then smallest: the first offer that fits
    is the one to launch."""
    price = launch_price(spec, itype.name)
    return (
        price is None,
        price or Decimal(0),
        itype.cpus,
        parse_quantity(itype.memory),
        parse_quantity(itype.disk),
        itype.gpus,
    )


@dataclass(frozen=True)
class EntryOffers:
    entry: str
    mask: int
    offers: tuple[Offer, ...]


@dataclass
class ClusterMatch:
    cluster: JobCluster
    # entry name -> (preferred offer, jobs per pilot), in entry order
    entries: dict[str, tuple[Offer, int]]


class Matcher:
    """Offers of a set of entries, and the memoised evaluation of expressions on them."""

    def __init__(
        self,
        entries: Iterable[tuple[str, CloudEntrySpec, VMImageSpec | None]],
        partitionable: bool = True,
    ) -> None:
        self.partitionable = partitionable
        offers: list[Offer] = []
        groups: list[EntryOffers] = []
        for name, spec, image in sorted(entries, key=lambda e: e[0]):
            first = len(offers)
            for itype in sorted(spec.instance_types, key=lambda it: offer_order(spec, it)):
                offers.append(
                    Offer(
                        index=len(offers),
                        entry=name,
                        instance_type=itype.name,
                        cpus=itype.cpus,
                        memory_mb=parse_quantity(itype.memory) // MIB,
                        disk_kb=parse_quantity(itype.disk) // KIB,
                        gpus=itype.gpus,
                        price=launch_price(spec, itype.name),
                        ad=machine_ad(name, spec, itype, image),
                    )
                )
            mask = ((1 << (len(offers) - first)) - 1) << first
            groups.append(EntryOffers(name, mask, tuple(offers[first:])))
        self.offers: Sequence[Offer] = offers
        self.entries: Sequence[EntryOffers] = groups
        self.all_mask = (1 << len(offers)) - 1
        # attribute names -> {projected machine values -> mask of offers}
        self._partitions: dict[tuple[str, ...], dict[tuple[object, ...], int]] = {}
        self._memo: dict[tuple[object, ...], int] = {}
        self.evaluations = 0

    def _partition(self, names: tuple[str, ...]) -> dict[tuple[object, ...], int]:
        part = self._partitions.get(names)
        if part is None:
            # Machine attributes that are expressions (entry `attributes`, image `provides`)
            # read further attributes: those decide the result too.
            wide = set(names)
            for offer in self.offers:
                for n in names:
                    value = offer.ad.get(n)
                    if isinstance(value, classad2.ExprTree):
                        wide |= _closure(offer.ad, value)
            keyed = tuple(sorted(wide))
            part = {}
            for offer in self.offers:
                key = tuple(_value_key(offer.ad.get(n)) for n in keyed)
                part[key] = part.get(key, 0) | (1 << offer.index)
            self._partitions[names] = part
        return part

    def _mask(self, expr: classad2.ExprTree, job: classad2.ClassAd, machine_side: bool) -> int:
        """Offers for which ``expr`` is true. ``machine_side``: MY = machine, TARGET = job
        (the request's matchExpression); otherwise MY = job, TARGET = machine."""
        names = tuple(sorted(_closure(job, expr)))
        job_key = tuple(_value_key(job.get(n)) for n in names)
        memo_key = (str(expr), machine_side, names, job_key)
        cached = self._memo.get(memo_key)
        if cached is not None:
            return cached
        mask = 0
        for _values, group in self._partition(names).items():
            sample = self.offers[(group & -group).bit_length() - 1].ad
            self.evaluations += 1
            value = (
                expr.eval(scope=sample, target=job)
                if machine_side
                else expr.eval(scope=job, target=sample)
            )
            if is_true(value):
                mask |= group
        self._memo[memo_key] = mask
        return mask

    def match(
        self, clusters: Iterable[JobCluster], match_expression: str = "true"
    ) -> list[ClusterMatch]:
        """For each cluster, the entries that can run it and the instance type to use."""
        request_expr = (
            None
            if match_expression.strip().lower() == "true"
            else classad2.ExprTree(match_expression)
        )
        out = []
        for cluster in clusters:
            mask = self.all_mask
            requirements = cluster.ad.get("Requirements")
            if isinstance(requirements, classad2.ExprTree):
                mask &= self._mask(requirements, cluster.ad, machine_side=False)
            elif requirements is not None and not is_true(requirements):
                mask = 0
            if mask and request_expr is not None:
                mask &= self._mask(request_expr, cluster.ad, machine_side=True)
            chosen: dict[str, tuple[Offer, int]] = {}
            # Walk the set bits only: offers of an entry are contiguous and in preference
            # order, so the first one that fits is the entry's choice.
            while mask:
                low = mask & -mask
                mask ^= low
                offer = self.offers[low.bit_length() - 1]
                if offer.entry in chosen:
                    continue
                per_pilot = offer.jobs_per_pilot(cluster, self.partitionable)
                if per_pilot > 0:
                    chosen[offer.entry] = (offer, per_pilot)
            out.append(ClusterMatch(cluster, chosen))
        return out

    def why_unmatched(self, cluster: JobCluster, match_expression: str = "true") -> str:
        """A sentence for an admin: why no entry can run this cluster."""
        if not self.offers:
            return "no usable entries"
        requirements = cluster.ad.get("Requirements")
        req_mask = self.all_mask
        if isinstance(requirements, classad2.ExprTree):
            req_mask = self._mask(requirements, cluster.ad, machine_side=False)
        if not req_mask:
            return f"the jobs' Requirements match no entry: {requirements}"
        if match_expression.strip().lower() != "true":
            expr = classad2.ExprTree(match_expression)
            if not req_mask & self._mask(expr, cluster.ad, machine_side=True):
                # An expression that is an error (a typo'd function, a type clash) excludes
                # as surely as a false one; say which, it is the request's own bug.
                value = expr.eval(scope=self.offers[0].ad, target=cluster.ad)
                if isinstance(value, classad2.Value) and value is classad2.Value.Error:
                    return (
                        "the request's matchExpression evaluates to an error for these jobs: "
                        f"{match_expression[:200]}"
                    )
                return "the request's matchExpression excludes every entry the jobs' Requirements allow"
        biggest = max(self.offers, key=lambda o: (o.cpus, o.memory_mb))
        return (
            f"no instance type fits one job ({cluster.cpus} cpus, {cluster.memory_mb} MB memory, "
            f"{cluster.disk_kb // 1024} MB disk, {cluster.gpus} gpus); largest is "
            f"{biggest.entry}/{biggest.instance_type} ({biggest.cpus} cpus, {biggest.memory_mb} MB)"
        )


def _value_key(value: object) -> object:
    return str(value) if isinstance(value, classad2.ExprTree) else value


_REFS: dict[str, frozenset[str]] = {}
_EMPTY = classad2.ClassAd()


def _refs(expr: classad2.ExprTree) -> frozenset[str]:
    # Which names an expression reads does not depend on the ad (both sides are taken),
    # so it is computed once per distinct expression text.
    text = str(expr)
    names = _REFS.get(text)
    if names is None:
        names = frozenset(referenced_names(_EMPTY, expr))
        if len(_REFS) < 100_000:
            _REFS[text] = names
    return names


def _closure(ad: classad2.ClassAd, expr: classad2.ExprTree, depth: int = 4) -> set[str]:
    """Names ``expr`` reads, following attributes of ``ad`` that are themselves expressions
    (RequestMemory = MemoryUsage ...): the result depends on all of them."""
    names = set(_refs(expr))
    if depth == 0:
        return names
    for name in list(names):
        value = ad.get(name)
        if isinstance(value, classad2.ExprTree):
            names |= _closure(ad, value, depth - 1)
    return names
