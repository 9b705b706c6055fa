"""A CloudEntry's validation and orphan collection, and what every handler shares: the
entry's problems in one pure function, its image asked of the cloud once per generation,
pilots counted once however many credentials see them, and specs parsed by one
decorator."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from glidein_devkit.fake_driver import FakeDriver
from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.api.glideinrequest import Budget, PilotSettings
from glidein_operator.api.trustdomain import TrustDomainSpec
from glidein_operator.api.vmimage import VMImageSpec
from glidein_operator.clouds.base import AuthError
from glidein_operator.clouds.instrumented import InstrumentedDriver
from glidein_operator.controller import imagecheck, orphans, runtime, wiring
from glidein_operator.ground import CloudPilot, PilotState
from glidein_operator.provisioning.eligibility import entry_problem

AMI = "ami-0123456789abcdef0"
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def _entry(**changes: Any) -> CloudEntrySpec:
    return CloudEntrySpec.model_validate(
        {
            "type": "ec2",
            "trustDomain": "aws",
            "site": "X",
            "vmImage": "img",
            "ec2": {"region": "us-east-1"},
            "instanceTypes": [{"name": "m5.large", "cpus": 2, "memory": "8Gi"}],
            **changes,
        }
    )


def _image(region: str = "us-east-1") -> VMImageSpec:
    return VMImageSpec.model_validate(
        {
            "owner": {"name": "t", "contact": "t@example.org"},
            "version": "1",
            "patchDate": "2026-11-01",
            "locations": [{"cloud": "ec2", "region": region, "imageId": AMI}],
        }
    )


DOMAINS = {"aws": TrustDomainSpec.model_validate({"credentialTypes": ["ec2-access-key"]})}


@pytest.fixture
def rt() -> Iterator[runtime.Runtime]:
    saved = runtime.RUNTIME
    made = runtime.Runtime(
        runtime.Settings(),
        pool_factory=lambda _c, _t: None,  # type: ignore[arg-type,return-value]
        clock=lambda: NOW,
    )
    runtime.install(made)
    yield made
    runtime.RUNTIME = saved


def _hold(rt: runtime.Runtime, fake: FakeDriver, generation: int = 1, source: str = "a") -> None:
    """A driver the operator holds for the entry, as a reconcile or a kept copy made it."""
    rt._drivers[(fake.entry, generation, source, "fp")] = InstrumentedDriver(
        fake, launches_per_minute=60, metrics=rt.metrics
    )


# --- the entry's problems ---------------------------------------------------------------


def test_entry_problems_come_from_eligibility() -> None:
    images = {"img": _image()}
    assert entry_problem(_entry(), DOMAINS, images) is None
    assert entry_problem(_entry(trustDomain="gone"), DOMAINS, images) == (
        "TrustDomainMissing",
        "TrustDomain 'gone' does not exist",
    )
    assert entry_problem(_entry(), DOMAINS, {}) == ("ImageMissing", "VMImage 'img' does not exist")
    reason, message = entry_problem(_entry(), DOMAINS, {"img": _image("eu-west-1")}) or ("", "")
    assert reason == "ImageNotInRegion"
    assert "no ec2 location in region 'us-east-1'" in message


# --- the image, asked of the cloud ------------------------------------------------------


def test_an_image_the_cloud_lacks_is_missing_and_asked_once(rt: runtime.Runtime) -> None:
    images = {"img": _image()}
    entry = _entry()
    # No driver held for the entry: nothing to ask with, nothing said.
    assert asyncio.run(imagecheck.problem(rt, "e", entry, 1, images)) is None
    fake = FakeDriver("e")
    _hold(rt, fake)
    for _ in range(3):
        reason, message = asyncio.run(imagecheck.problem(rt, "e", entry, 1, images)) or ("", "")
        assert reason == "ImageMissing"
        assert AMI in message
    assert fake.called("image_exists") == [AMI]
    # A new generation of the entry is asked again; staged now, it is there.
    fake.images.add(AMI)
    _hold(rt, fake, generation=2)
    assert asyncio.run(imagecheck.problem(rt, "e", entry, 2, images)) is None
    assert fake.called("image_exists") == [AMI, AMI]
    imagecheck.forget(rt, "e")
    assert not rt.images_seen


def test_a_failed_lookup_is_unverified_and_asked_again(rt: runtime.Runtime) -> None:
    images = {"img": _image()}
    fake = FakeDriver("e")
    fake.images.add(AMI)
    fake.fail_next("image_exists", AuthError("the key was refused"))
    _hold(rt, fake)
    reason, message = asyncio.run(imagecheck.problem(rt, "e", _entry(), 1, images)) or ("", "")
    assert reason == "ImageUnverified"
    assert "AuthFailed: the key was refused" in message
    assert asyncio.run(imagecheck.problem(rt, "e", _entry(), 1, images)) is None
    assert len(fake.called("image_exists")) == 2


def test_an_image_any_credential_sees_exists(rt: runtime.Runtime) -> None:
    blind, seeing = FakeDriver("e"), FakeDriver("e")
    seeing.images.add(AMI)
    _hold(rt, blind, source="a")
    _hold(rt, seeing, source="b")
    assert asyncio.run(imagecheck.problem(rt, "e", _entry(), 1, {"img": _image()})) is None


def test_entries_without_an_image_ask_nothing(rt: runtime.Runtime) -> None:
    grid = CloudEntrySpec.model_validate(
        {
            "type": "grid",
            "trustDomain": "osg",
            "site": "G",
            "grid": {
                "ceType": "condor",
                "endpoint": "ce.example.org:9619",
                "submitter": {
                    "collector": "submit.example.org",
                    "schedd": "glidein-submitter",
                    "tokenSecretRef": {"name": "submit-key"},
                },
            },
            "instanceTypes": [{"name": "4c", "cpus": 4, "memory": "8Gi"}],
        }
    )
    fake = FakeDriver("g")
    _hold(rt, fake)
    assert asyncio.run(imagecheck.problem(rt, "g", grid, 1, {})) is None
    assert not fake.calls


# --- the image catalogue acts on the entries ---------------------------------------------


def _check_entry(spec: CloudEntrySpec, images: dict[str, VMImageSpec]) -> dict[str, Any]:
    """One run of the entry's validation timer, as kopf calls it; its conditions."""
    from glidein_operator.controller import handlers

    patch = kopf.Patch()
    body = {"kind": "CloudEntry", "metadata": {"name": "e", "generation": 2}}
    asyncio.run(
        handlers.check_entry(
            name="e",
            spec=spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
            status={},
            meta=body["metadata"],
            patch=patch,
            body=body,
            entries={},
            domains={"aws": [DOMAINS["aws"]]},
            images={k: [v] for k, v in images.items()},
        )
    )
    return {c["type"]: c for c in patch["status"]["conditions"]}


def test_every_entry_using_a_deprecated_image_gets_a_warning_condition(
    rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    warned: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "warn", lambda _b, reason, message: warned.append((reason, message)))
    old = _image().model_copy(update={"deprecated": True, "superseded_by": "img-2"})
    for entry in (_entry(), _entry(site="Y")):
        conds = _check_entry(entry, {"img": old})
        flagged = conds["ImageDeprecated"]
        assert (flagged["status"], flagged["reason"]) == ("True", "Deprecated")
        assert "VMImage img" in flagged["message"]
        assert "'img-2'" in flagged["message"]
        assert conds["Ready"]["status"] == "True"  # a deprecated image still boots
    assert [r for r, _m in warned] == ["Deprecated", "Deprecated"]
    current = _check_entry(_entry(), {"img": _image()})["ImageDeprecated"]
    assert (current["status"], current["reason"]) == ("False", "ImageCurrent")


def test_the_image_status_dates_its_patch_for_the_age_column(rt: runtime.Runtime) -> None:
    from glidein_operator.api.resources import VM_IMAGE
    from glidein_operator.controller import handlers

    patch = kopf.Patch()
    spec = _image().model_dump(by_alias=True, exclude_none=True, mode="json")
    asyncio.run(
        handlers.check_image(
            spec=spec, status={}, meta={"name": "img", "generation": 1}, patch=patch, body={}
        )
    )
    assert patch["status"]["patchedAt"] == "2026-11-01T00:00:00Z"
    [column] = [c for c in VM_IMAGE.columns if c.json_path == ".status.patchedAt"]
    assert column.type == "date"  # kubectl shows it as an age, like AGE


# --- orphans ----------------------------------------------------------------------------


def _pilot(cloud_id: str, uid: str) -> CloudPilot:
    return CloudPilot(cloud_id, cloud_id, "e", uid, "b", "m5.large", PilotState.RUNNING)


def test_orphans_go_and_live_pilots_count_once(rt: runtime.Runtime) -> None:
    # Two credentials of one account see the same pilots.
    first, second = FakeDriver("e"), FakeDriver("e")
    for fake in (first, second):
        fake.pilots = {p.cloud_id: p for p in (_pilot("i-1", "live"), _pilot("i-2", "gone"))}
    _hold(rt, first, source="a")
    _hold(rt, second, source="b")
    live = asyncio.run(
        orphans.collect(rt, "e", _entry(), 1, alive_requests={"live"}, request_namespaces={"ns"})
    )
    assert live == 1
    assert first.called("terminate") == [["i-2"]]
    assert asyncio.run(orphans.collect(rt, "x", _entry(), 1, {"live"}, {"ns"})) is None


# --- specs parsed once, for every handler -----------------------------------------------


def test_a_spec_that_does_not_validate_is_reported_not_handled(
    rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    warned: list[str] = []
    monkeypatch.setattr(kopf, "warn", lambda _body, reason, message: warned.append(reason))
    handled: list[Any] = []
    invalid: list[Any] = []

    @wiring.with_spec(TrustDomainSpec, also=lambda kw: invalid.append(kw["meta"]))
    async def handler(parsed: TrustDomainSpec, **_: Any) -> None:
        handled.append(parsed)

    def call(spec: dict[str, Any]) -> kopf.Patch:
        patch = kopf.Patch()
        body = {"kind": "TrustDomain", "metadata": {"name": "d", "generation": 3}}
        asyncio.run(handler(spec=spec, status={}, meta=body["metadata"], patch=patch, body=body))
        return patch

    patch = call({"credentialTypes": ["no-such-type"]})
    assert not handled
    assert invalid == [{"name": "d", "generation": 3}]
    [ready] = patch["status"]["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert ready["message"].startswith("spec.credentialTypes[0]")
    assert ready["observedGeneration"] == 3
    assert patch["status"]["observedGeneration"] == 3
    assert warned == ["InvalidSpec"]

    patch = call({"credentialTypes": ["ec2-access-key"]})
    assert handled == [DOMAINS["aws"]]
    assert not patch


def test_kopf_sees_the_handler_beneath() -> None:
    from kopf._core.actions.invocation import is_async_fn
    from kopf._core.intents.registries import get_callable_id

    async def check_thing(parsed: Any, **_: Any) -> None: ...

    wrapped = wiring.with_spec(TrustDomainSpec)(check_thing)
    assert get_callable_id(wrapped) == get_callable_id(check_thing)  # the handler id
    assert is_async_fn(wrapped)


def test_a_finalizer_gets_none_for_a_spec_that_does_not_validate() -> None:
    assert wiring.spec_or_none(TrustDomainSpec, {"credentialTypes": ["nope"]}) is None
    assert wiring.spec_or_none(TrustDomainSpec, {"credentialTypes": ["scitoken"]}) is not None


# --- durations --------------------------------------------------------------------------


def test_durations_are_read_as_timedeltas() -> None:
    pilot = PilotSettings.model_validate({"lifetime": "1h30m", "retireBeforeEnd": "90s"})
    assert pilot.lifetime_td == dt.timedelta(hours=1, minutes=30)
    assert pilot.retire_before_end_td == dt.timedelta(seconds=90)
    assert pilot.idle_timeout_td == dt.timedelta(minutes=20)  # the default
    assert pilot.registration_timeout_td == dt.timedelta(minutes=15)
    assert pilot.model_copy(update={"lifetime": "2h"}).lifetime_td == dt.timedelta(hours=2)
    budget = Budget.model_validate({"limit": 10, "killGracePeriod": "250ms"})
    assert budget.kill_grace_period_td == dt.timedelta(milliseconds=250)
