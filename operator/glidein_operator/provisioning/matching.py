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

Two more things keep it linear in clusters with a small constant (measured with
``tests/benchmarks/plan_scale.py``: 100k jobs in 2,000 clusters against 200 entries x 3
types went from 0.60 s to a fraction of that; 20,000 clusters from 3.8 s to under 1 s):

* A ClassAd evaluation with a target (a match: MY and TARGET) costs about 6 us in the
  bindings, one with a scope only about 0.6 us. The request's matchExpression (MY =
  machine, TARGET = job) is first flattened once per job key with the job as ``TARGET``,
  which leaves an expression of the machine's attributes alone, evaluated per group with
  the machine as its only scope. Where that could differ from a real match (an unscoped
  name the job defines and a machine group lacks, which a match would look up in the job;
  a job attribute that is itself an expression), the group is evaluated as a match.
* Which offer an entry launches for a cluster depends only on the jobs' size and on which
  of its offers match: per size, each entry's fitting offers are ranked once, and a
  cluster's choice is memoised on (size, mask of matching offers).

Choice of instance type: the cheapest *job slot*, not the cheapest hour. The price of one
pilot (``money.pricing.launch_price``) divided by how many of the cluster's jobs one
partitionable pilot runs at once; ties go to the smaller type (less is wasted when demand
drops). The same figure ranks entries for placement ``cost`` and launches at the budget
gate.
"""

from __future__ import annotations

import math
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


Size = tuple[int, int, int, int]  # a job's cpus, memory MB, disk KB, gpus


def size_of(cluster: JobCluster) -> Size:
    return (max(1, cluster.cpus), cluster.memory_mb, cluster.disk_kb, cluster.gpus)


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

    def jobs_per_pilot(self, cluster: JobCluster | Size, partitionable: bool) -> int:
        """How many of the cluster's jobs one pilot runs at once (0: does not fit)."""
        cpus, memory_mb, disk_kb, gpus = cluster if isinstance(cluster, tuple) else size_of(cluster)
        fits = [self.cpus // max(1, cpus)]
        if memory_mb:
            fits.append(self.memory_mb // memory_mb)
        if disk_kb:
            fits.append(self.disk_kb // disk_kb)
        if gpus:
            fits.append(self.gpus // gpus)
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


# Machine ads by (entry, its spec, type, image) object: every request's Matcher reads the
# same entries in a cycle, and building an ad (its offer attributes parsed as ClassAd
# expressions) cost 0.15 ms each, 100 entries x 50 requests a cycle. The objects are kept
# with their ad, so an id is not reused while it is a key; Matchers never change an ad.
_ADS: dict[tuple[str, int, str, int], tuple[object, object, classad2.ClassAd]] = {}


def _shared_ad(
    entry: str, spec: CloudEntrySpec, itype: InstanceType, image: VMImageSpec | None
) -> classad2.ClassAd:
    key = (entry, id(spec), itype.name, id(image))
    found = _ADS.get(key)
    if found is None:
        if len(_ADS) > 8192:
            _ADS.clear()
        found = _ADS[key] = (spec, image, machine_ad(entry, spec, itype, image))
    return found[2]


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
        group_of: list[int] = []
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
                        ad=_shared_ad(name, spec, itype, image),
                    )
                )
                group_of.append(len(groups))
            mask = ((1 << (len(offers) - first)) - 1) << first
            groups.append(EntryOffers(name, mask, tuple(offers[first:])))
        self.offers: Sequence[Offer] = offers
        self.entries: Sequence[EntryOffers] = groups
        self._group_of = group_of
        self.all_mask = (1 << len(offers)) - 1
        # attribute names -> {projected machine values -> mask of offers}
        self._partitions: dict[tuple[str, ...], dict[tuple[object, ...], int]] = {}
        self._memo: dict[tuple[object, ...], int] = {}
        self._cluster_masks: dict[tuple[object, ...], int] = {}
        self._reads: dict[tuple[object, ...], tuple[str, ...]] = {}
        self._names: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._sampled: dict[tuple[str, ...], list[tuple[int, classad2.ClassAd]]] = {}
        self._ranked: dict[tuple[Size, int], list[list[tuple[int, tuple[Offer, int]]]]] = {}
        self._most: dict[Size, int] = {}
        self._choices: dict[tuple[Size, int, int], dict[str, tuple[Offer, int]]] = {}
        self._slot_prices: dict[tuple[int, int], float] = {}
        self.evaluations = 0

    def slot_price(self, offer: Offer, jobs_per_pilot: int) -> float:
        """The price of one job slot of ``offer``: ``launch_price(spec, type,
        jobs_per_pilot)``, inf when unknown (unknown is not free). That is the launch price
        over the jobs, so it is asked once per offer (``Offer.price``) and divided here; a
        unit test holds the two equal."""
        if offer.price is None:
            return math.inf
        key = (offer.index, jobs_per_pilot)
        price = self._slot_prices.get(key)
        if price is None:
            price = self._slot_prices[key] = float(offer.price / max(1, jobs_per_pilot))
        return price

    def most_per_pilot(self, size: Size) -> int:
        """The most jobs of ``size`` any offer runs at once."""
        most = self._most.get(size)
        if most is None:
            most = max((o.jobs_per_pilot(size, self.partitionable) for o in self.offers), default=0)
            self._most[size] = most
        return most

    def _rank(self, size: Size, jobs: int) -> list[list[tuple[int, tuple[Offer, int]]]]:
        """Per entry, its offers that fit one job of ``size``, best first: cheapest job
        slot, then the smaller type. A slot counts only if the cluster has a job for it: a
        pilot with room for six runs three when there are three (``jobs``)."""
        ranked = self._ranked.get((size, jobs))
        if ranked is None:
            ranked = []
            for group in self.entries:
                fitting = []
                for offer in group.offers:
                    per_pilot = offer.jobs_per_pilot(size, self.partitionable)
                    if per_pilot > 0:
                        fitting.append((offer, per_pilot))
                fitting.sort(
                    key=lambda op: (
                        self.slot_price(op[0], min(op[1], jobs)),
                        op[0].cpus,
                        op[0].memory_mb,
                        op[0].disk_kb,
                        op[0].gpus,
                        op[0].index,
                    )
                )
                # (bit, (offer, jobs per pilot)): the pair is what a choice holds, made once
                # here and shared, not once per cluster (fewer objects for the collector).
                ranked.append([(1 << o.index, (o, n)) for o, n in fitting])
            self._ranked[(size, jobs)] = ranked
        return ranked

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

    def _mask(
        self,
        expr: classad2.ExprTree,
        job: classad2.ClassAd,
        machine_side: bool,
        values: dict[str, object] | None = None,
        text: str | None = None,
    ) -> int:
        """Offers for which ``expr`` is true. ``machine_side``: MY = machine, TARGET = job
        (the request's matchExpression); otherwise MY = job, TARGET = machine.
        ``values``: the job's attributes by lower-case name, ``text``: the expression's,
        where the caller has them already."""
        if values is None:
            values = _values(job)
        if text is None:
            text = str(expr)
        nested = tuple(k for k, v in values.items() if isinstance(v, classad2.ExprTree))
        names = self._names.get((text, nested))
        if names is None:
            names = self._names[(text, nested)] = tuple(sorted(_closure_of(values, text, expr)))
        job_values = [values.get(n.lower()) for n in names]
        job_key = tuple(_value_key(v) for v in job_values)
        memo_key = (text, machine_side, names, job_key)
        cached = self._memo.get(memo_key)
        if cached is not None:
            return cached
        flat = None
        defined: list[str] = []
        if machine_side and not any(isinstance(v, classad2.ExprTree) for v in job_values):
            flat, defined = _bind_target(expr, job)
        mask = 0
        groups = self._samples(names)
        self.evaluations += len(groups)
        if flat is not None and not isinstance(flat, classad2.ExprTree):
            mask = self.all_mask if is_true(flat) else 0  # it read the job alone
        elif flat is not None and not defined:
            for group, sample in groups:  # the common case: one scope, no fallback
                if is_true(flat.eval(scope=sample)):
                    mask |= group
        else:
            for group, sample in groups:
                if flat is not None and all(n in sample for n in defined):
                    value = flat.eval(scope=sample)
                elif machine_side:
                    value = expr.eval(scope=sample, target=job)
                else:
                    value = expr.eval(scope=job, target=sample)
                if is_true(value):
                    mask |= group
        self._memo[memo_key] = mask
        return mask

    def _samples(self, names: tuple[str, ...]) -> list[tuple[int, classad2.ClassAd]]:
        """The partition of offers by ``names``: each group's mask and one of its ads."""
        samples = self._sampled.get(names)
        if samples is None:
            samples = self._sampled[names] = [
                (group, self.offers[(group & -group).bit_length() - 1].ad)
                for group in self._partition(names).values()
            ]
        return samples

    def cluster_mask(
        self,
        cluster: JobCluster,
        request_expr: classad2.ExprTree | None,
        request_text: str = "",
    ) -> int:
        """Offers that can run the cluster's jobs, memoised on what decides it: the jobs'
        Requirements and the values of every attribute either expression reads."""
        ad = cluster.ad
        values = cluster.attribute_values()
        requirements = values.get("requirements")
        if requirements is not None and not isinstance(requirements, classad2.ExprTree):
            return self.all_mask if is_true(requirements) else 0
        if request_expr is not None:
            request_text = request_text or str(request_expr)
        # Which names decide it depends on the texts, and on which of the job's attributes
        # are expressions themselves (their names are read too). Both are the cluster's
        # own: worked out once per cluster.
        own = cluster.derived.get("match")
        if not isinstance(own, tuple):
            own = cluster.derived["match"] = (
                None if requirements is None else str(requirements),
                tuple(
                    k
                    for k, v in values.items()
                    if k != "requirements" and isinstance(v, classad2.ExprTree)
                ),
            )
        req_text: str | None = own[0]
        nested: tuple[str, ...] = own[1]
        read_key = (req_text, request_text, nested)
        read = self._reads.get(read_key)
        if read is None:
            names: set[str] = set()
            if requirements is not None and req_text is not None:
                names |= _closure_of(values, req_text, requirements)
            if request_expr is not None:
                names |= _closure_of(values, request_text, request_expr)
            read = tuple(sorted({n.lower() for n in names}))
            self._reads[read_key] = read
        read_values = tuple(map(values.get, read))
        if nested:
            read_values = tuple(_value_key(v) for v in read_values)
        key = (req_text, request_text, read, read_values)
        mask = self._cluster_masks.get(key)
        if mask is None:
            mask = self.all_mask
            if requirements is not None:
                mask &= self._mask(requirements, ad, False, values, req_text)
            if mask and request_expr is not None:
                mask &= self._mask(request_expr, ad, True, values, request_text)
            self._cluster_masks[key] = mask
        return mask

    def choose(self, size: Size, jobs: int, mask: int) -> dict[str, tuple[Offer, int]]:
        """Per entry with a matching offer that fits, the one to launch for ``jobs`` jobs
        of ``size`` (cheapest job slot, then the smaller type) and how many it runs at
        once. Memoised: the dict is shared, never to be changed by the caller."""
        jobs = max(1, min(jobs, self.most_per_pilot(size)))
        key = (size, jobs, mask)
        chosen = self._choices.get(key)
        if chosen is not None:
            return chosen
        chosen = {}
        ranked = self._rank(size, jobs)
        group_of, groups = self._group_of, self.entries
        rest = mask
        # One step per entry with a matching offer, not per offer: an entry's offers are
        # contiguous bits, cleared together once its choice is made.
        while rest:
            low = rest & -rest
            g = group_of[low.bit_length() - 1]
            entry_mask = groups[g].mask
            here = rest & entry_mask
            rest &= ~entry_mask
            for bit, pair in ranked[g]:
                if here & bit:
                    chosen[groups[g].entry] = pair
                    break
        self._choices[key] = chosen
        return chosen

    def match(
        self, clusters: Iterable[JobCluster], match_expression: str = "true"
    ) -> list[ClusterMatch]:
        """For each cluster, the entries that can run it and the instance type to use."""
        request_expr = (
            None
            if match_expression.strip().lower() == "true"
            else classad2.ExprTree(match_expression)
        )
        request_text = "" if request_expr is None else str(request_expr)
        out = []
        for cluster in clusters:
            mask = self.cluster_mask(cluster, request_expr, request_text)
            chosen = self.choose(size_of(cluster), cluster.count, mask) if mask else {}
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


def _bind_target(expr: classad2.ExprTree, job: classad2.ClassAd) -> tuple[object, list[str]]:
    """``expr`` (MY = machine, TARGET = job) with the job's values put in for its
    ``TARGET.`` references, to evaluate with the machine as its only scope; and the names
    a machine must define for that to be what a match gives (unscoped names the job
    defines: a match looks them up in the job when the machine lacks them). Returns
    (None, []) where it cannot be exact."""
    scope = classad2.ClassAd()
    scope["TARGET"] = job
    flat = scope.flatten(expr)
    if not isinstance(flat, classad2.ExprTree):
        return flat, []  # a constant: it read the job alone
    defined = []
    for ref in _EMPTY.externalRefs(flat):
        if not ref:
            continue
        scoped, _, name = ref.rpartition(".")
        if job.get(name) is None:
            continue  # undefined in the job: undefined either way
        if scoped:
            return None, []  # a TARGET reference flatten left: evaluate as a match
        defined.append(name)
    return flat, defined


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


def _values(ad: classad2.ClassAd) -> dict[str, object]:
    """An ad's attributes by lower-case name (ClassAd names ignore case), read once."""
    return {k.lower(): v for k, v in ad.items()}


def _closure_of(
    values: dict[str, object], text: str, expr: classad2.ExprTree, depth: int = 4
) -> set[str]:
    """``_closure`` on an ad's ``values``, for an expression whose text is known."""
    names = _REFS.get(text)
    if names is None:
        names = _refs(expr)
    out = set(names)
    if depth == 0:
        return out
    for name in names:
        value = values.get(name.lower())
        if isinstance(value, classad2.ExprTree):
            out |= _closure_of(values, str(value), value, depth - 1)
    return out


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
