"""Whether the cloud has the image a VM entry boots, as part of the entry's validation.

A VMImage names an image id per cloud and region; only the cloud knows whether it is
there. Asking takes a credential, and a CloudEntry holds none: the operator asks with
the drivers it already holds for the entry, those a request's reconcile built and those
the orphan collector made from kept copies of credentials (controller/keeper.py). Until
it holds one, the entry is not checked at the cloud. Each (entry generation, image id)
is asked once per process; an answer that could not be had (a DriverError) is asked
again at the next check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.clouds.base import DriverError
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.controller.runtime import Runtime
from glidein_operator.provisioning.eligibility import image_for


def deprecated(spec: CloudEntrySpec, images: Mapping[str, VMImageSpec]) -> dict[str, str]:
    """The entry's image, when its VMImage is deprecated, and what to do: the entry's
    ImageDeprecated condition (a warning: the image still boots)."""
    image = images.get(spec.vm_image or "")
    if image is None or not image.deprecated:
        return {}
    instead = (
        f"move the entry to VMImage {image.superseded_by!r} (spec.vmImage)"
        if image.superseded_by
        else "ask its owner which image replaces it"
    )
    owner = (
        f"{image.owner.name} <{image.owner.contact}>" if image.owner.contact else image.owner.name
    )
    return {
        f"VMImage {spec.vm_image}": f"version {image.version}, patched {image.patch_date}, is "
        f"deprecated by its owner {owner}; {instead}"
    }


def patched_at(image: VMImageSpec) -> dt.datetime:
    """The patch date as the timestamp a ``date`` printer column shows the age of."""
    return dt.datetime.combine(image.patch_date, dt.time(), dt.UTC)


async def problem(
    rt: Runtime,
    entry: str,
    spec: CloudEntrySpec,
    generation: int,
    images: Mapping[str, VMImageSpec],
) -> tuple[str, str] | None:
    """(reason, message) when the cloud does not have the entry's image, or could not
    say; None when it has it, when the entry boots no image, or when the operator holds
    no driver for it yet. The drivers' calls run off the event loop (InstrumentedDriver)."""
    image, _why = image_for(spec, images)
    location = image.location(spec.type, spec.image_region or "") if image else None
    if location is None:
        return None  # no VM image, or not one in the region: eligibility said why
    image_id = location.image_id
    where = f"VMImage {spec.vm_image!r}, {spec.type} region {spec.image_region!r}"
    key = (entry, generation, image_id)
    if key not in rt.images_seen:
        drivers = rt.drivers_for(entry, generation)
        if not drivers:
            return None
        forget(rt, entry)  # answers about an earlier generation or image id
        answer = await _ask(drivers, image_id)
        if isinstance(answer, DriverError):
            return (
                "ImageUnverified",
                f"cannot look up image {image_id} ({where}) at the cloud: "
                f"{answer.reason}: {answer}",
            )
        rt.images_seen[key] = answer
    if not rt.images_seen[key]:
        return (
            "ImageMissing",
            f"the cloud does not have image {image_id} ({where}): stage it there, or "
            f"correct the imageId of that location (kubectl edit vmimage {spec.vm_image})",
        )
    return None


async def _ask(drivers: list[InstrumentedDriver], image_id: str) -> bool | DriverError:
    """True when any driver sees the image (a private image may be shared with one account
    and not another), False when every one answers no, else the first failure."""
    failures: list[DriverError] = []
    for d in drivers:
        try:
            if await d.image_exists(image_id):
                return True
        except DriverError as exc:
            failures.append(exc)
    return failures[0] if failures else False


def forget(rt: Runtime, entry: str) -> None:
    """Whatever the cloud said of an entry's image (a deleted entry, or before asking
    about another generation or image id)."""
    for key in [k for k in rt.images_seen if k[0] == entry]:
        del rt.images_seen[key]
