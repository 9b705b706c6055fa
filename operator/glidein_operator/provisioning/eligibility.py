"""Which entries a request may use, and for each one it may not, the exact reason.

An entry serves a request when the request selects it (by name or label, or selects
nothing and so takes all), holds a credential of a type the entry's trust domain
accepts, and (for VMs) the entry's image is staged in the entry's region. Everything
here is pure: the operator and ``glidein-operator plan`` both call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from glidein_operator.api.cloudentry import VM_ENTRY_TYPES, CloudEntrySpec
from glidein_operator.api.glideinrequest import Credential, GlideinRequestSpec
from glidein_operator.api.trustdomain import ENTRY_CREDENTIAL_TYPES, TrustDomainSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.provisioning.planner import Candidate


@dataclass(frozen=True)
class EntryRecord:
    name: str
    labels: Mapping[str, str]
    spec: CloudEntrySpec


def selected(request: GlideinRequestSpec, entry: EntryRecord) -> bool:
    sel = request.entries
    if not sel.names and sel.selector is None:
        return True
    if entry.name in sel.names:
        return True
    if sel.selector is not None and sel.selector.match_labels:
        return all(entry.labels.get(k) == v for k, v in sel.selector.match_labels.items())
    return False


def entry_problem(
    entry: CloudEntrySpec,
    domains: Mapping[str, TrustDomainSpec],
    images: Mapping[str, VMImageSpec],
) -> tuple[str, str] | None:
    """Why no request can use this entry, whatever it holds: (the reason its Ready
    condition gives, the message), or None. The words are those ``credential_for`` and
    ``image_for`` give a request for the same fault."""
    if entry.trust_domain not in domains:
        return "TrustDomainMissing", _no_domain(entry)
    problem = _image_problem(entry, images)
    if problem is not None:
        return problem
    return None


def _no_domain(entry: CloudEntrySpec) -> str:
    return f"TrustDomain {entry.trust_domain!r} does not exist"


def credential_for(
    request: GlideinRequestSpec, entry: CloudEntrySpec, domains: Mapping[str, TrustDomainSpec]
) -> tuple[Credential | None, str]:
    """The request's credential for this entry, or None and why not."""
    domain = domains.get(entry.trust_domain)
    if domain is None:
        return None, _no_domain(entry)
    held = [c for c in request.credentials if c.trust_domain == entry.trust_domain]
    if not held:
        return None, f"no credential for trust domain {entry.trust_domain!r}"
    usable = ENTRY_CREDENTIAL_TYPES[entry.type]
    for cred in held:
        if cred.type in domain.credential_types and cred.type in usable:
            return cred, ""
    types = ", ".join(sorted({c.type for c in held}))
    fits = ", ".join(sorted(set(domain.credential_types) & usable)) or "none"
    return None, (
        f"credential type {types} cannot drive this {entry.type} entry in trust domain "
        f"{entry.trust_domain!r} (usable: {fits})"
    )


def image_for(
    entry: CloudEntrySpec, images: Mapping[str, VMImageSpec]
) -> tuple[VMImageSpec | None, str]:
    """The VMImage a VM entry boots, or None and why not (None and "": not a VM entry)."""
    if entry.type not in VM_ENTRY_TYPES:
        return None, ""
    problem = _image_problem(entry, images)
    if problem is not None:
        return None, problem[1]
    assert entry.vm_image is not None  # _image_problem found it
    return images[entry.vm_image], ""


def _image_problem(
    entry: CloudEntrySpec, images: Mapping[str, VMImageSpec]
) -> tuple[str, str] | None:
    if entry.type not in VM_ENTRY_TYPES:
        return None
    assert entry.vm_image is not None  # the schema requires it for VM types
    image = images.get(entry.vm_image)
    if image is None:
        return "ImageMissing", f"VMImage {entry.vm_image!r} does not exist"
    region = entry.image_region or ""
    if image.location(entry.type, region) is None:
        return (
            "ImageNotInRegion",
            f"VMImage {entry.vm_image!r} has no {entry.type} location in region {region!r}",
        )
    return None


NO_POOL_CREDENTIAL = (
    "spec.pilot.tokenSecretRef is not set: pilots would have no credential to join the pool"
)


def candidates(
    request: GlideinRequestSpec,
    entries: list[EntryRecord],
    domains: Mapping[str, TrustDomainSpec],
    images: Mapping[str, VMImageSpec],
) -> tuple[list[Candidate], dict[str, str]]:
    """(entries the request may use, {entry: why not} for selected entries it may not)."""
    usable: list[Candidate] = []
    blocked: dict[str, str] = {}
    for e in sorted(entries, key=lambda r: r.name):
        if not selected(request, e):
            continue
        if request.pilot.token_secret_ref is None:
            # `plan` cannot read Secrets, but it can see this: no pilot could join.
            blocked[e.name] = NO_POOL_CREDENTIAL
            continue
        cred, why = credential_for(request, e.spec, domains)
        if cred is None:
            blocked[e.name] = why
            continue
        image, why = image_for(e.spec, images)
        if why:
            blocked[e.name] = why
            continue
        unpriced = e.spec.unpriced()
        if request.budget is not None and unpriced:
            blocked[e.name] = (
                f"no pricePerHour for instance type(s) {', '.join(unpriced)}: a budget cannot "
                "count what its pilots cost (write the price, or 0 if it costs nothing)"
            )
            continue
        usable.append(Candidate(e.name, e.spec, image))
    known = {e.name for e in entries}
    for name in request.entries.names:
        if name not in known:
            # Named but not there: a typo, not applied yet, being deleted, or invalid
            # (its own status then says which field).
            blocked[name] = f"CloudEntry {name!r} does not exist (or is invalid, or being deleted)"
    return usable, blocked
