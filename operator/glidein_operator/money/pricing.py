"""What a pilot costs per hour, and what a new one would: from the cloud where it says,
else from the CloudEntry."""

from __future__ import annotations

from decimal import Decimal

from glidein_operator.api.cloudentry import CloudEntrySpec
from glidein_operator.ground import CloudPilot, PilotState
from glidein_operator.money.ledger import Charge


def on_demand_price(spec: CloudEntrySpec, instance_type: str) -> Decimal | None:
    """None: unknown (no pricePerHour at a cloud one pays for, or a type not listed)."""
    itype = spec.instance_type(instance_type)
    return itype.price_per_hour if itype else None


def launch_price(
    spec: CloudEntrySpec, instance_type: str, jobs_per_pilot: int = 1
) -> Decimal | None:
    """The most a new pilot of this type may cost per hour, which the budget gate must
    assume: the spot cap when the entry launches spot with one (the market may climb to
    it), the on-demand price otherwise (AWS's cap for spot without one), whichever is
    higher when a spot shortage may fall back to on-demand. None when that is unknown.

    With ``jobs_per_pilot`` (how many jobs of one cluster a partitionable pilot of this
    type runs at once), the price of one job slot: the figure the offer choice, placement
    ``cost`` and the budget gate all compare, so that a type twice the price running four
    jobs at once wins over one running one."""
    on_demand = on_demand_price(spec, instance_type)
    spot = spec.spot
    if not (spot and spot.enabled and spot.max_price_per_hour is not None):
        price = on_demand
    elif spot.fall_back_to_on_demand:
        price = None if on_demand is None else max(spot.max_price_per_hour, on_demand)
    else:
        price = spot.max_price_per_hour
    if price is None or jobs_per_pilot <= 1:
        return price
    return price / jobs_per_pilot


def charge(pilot: CloudPilot, spec: CloudEntrySpec | None) -> Charge | None:
    """The pilot as accounting sees it; None when it is gone and the cloud does not say
    when (nothing more to count)."""
    if pilot.state is PilotState.TERMINATED and pilot.ended_at is None:
        return None
    itype = spec.instance_type(pilot.instance_type) if spec else None
    price = pilot.price_per_hour
    if price is None and spec is not None:
        spot = spec.spot
        if pilot.spot and spot and spot.max_price_per_hour is not None:
            price = spot.max_price_per_hour
        else:
            price = on_demand_price(spec, pilot.instance_type)
    worst = None
    if pilot.spot and spec is not None:
        # AWS takes a spot pilot back when the market passes its cap (the on-demand price
        # when none was given): that cap is what it may cost.
        cap = spec.spot.max_price_per_hour if spec.spot else None
        worst = cap if cap is not None else on_demand_price(spec, pilot.instance_type)
    # An unknown price counts as 0: such pilots exist only where no budget was set when
    # they launched (eligibility keeps a request with a budget off unpriced entries).
    return Charge(
        pilot_id=pilot.pilot_id,
        entry=pilot.entry,
        worst_price_per_hour=worst,
        price_per_hour=price if price is not None else Decimal(0),
        cpus=itype.cpus if itype else 1,
        launched_at=pilot.launched_at,
        ended_at=pilot.ended_at if pilot.state is PilotState.TERMINATED else None,
    )
