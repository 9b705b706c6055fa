"""GlideinRequest: what a community (VO) asks for (the frontend group of GlideinWMS).

Which schedds and jobs count, which entries may serve them, with which credentials,
what pilots look like, and the limits and budget that bound the whole.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from glidein_operator.api.base import (
    ApiModel,
    CelRule,
    Conditions,
    Duration,
    DurationRange,
    Int,
    ListMap,
    ListSet,
    MapKeys,
    Money,
    ObjectName,
    SecretKeyRef,
    Timestamp,
    cel_is_duration,
    conditions_field,
    parse_duration,
)
from glidein_operator.api.classad import ClassAdExpression, ConfigClassAdExpression
from glidein_operator.api.trustdomain import CredentialType


class ScheddRef(ApiModel):
    """A schedd whose idle jobs this request provisions for."""

    name: str = Field(
        min_length=1,
        max_length=256,
        description="The schedd's Name attribute, e.g. schedd@submit1.",
    )
    collector: str | None = Field(
        default=None,
        max_length=512,
        description="Collector to locate the schedd in; absent means the request's collector.",
    )


class LabelSelector(ApiModel):
    """Selects CloudEntries by their labels."""

    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels an entry must carry, all of them."
    )


class EntrySelection(ApiModel):
    """Which CloudEntries may serve this request. Empty means every entry whose trust domain
    accepts one of the request's credentials."""

    names: Annotated[list[ObjectName], ListSet()] = Field(
        default_factory=list, description="Entries by name."
    )
    selector: LabelSelector | None = Field(default=None, description="Entries by label.")


class Credential(ApiModel):
    """A credential the request presents to the entries of one trust domain."""

    trust_domain: ObjectName = Field(description="TrustDomain this credential is for.")
    type: CredentialType = Field(description="Credential type; the trust domain must accept it.")
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret holding it, in this request's namespace (not needed for in-cluster).",
    )

    cel_rules = (
        CelRule(
            "(self.type == 'in-cluster') != has(self.secretRef)",
            "secretRef is required for every credential type but in-cluster",
            ".secretRef",
        ),
    )

    @model_validator(mode="after")
    def _secret_unless_in_cluster(self) -> Credential:
        if (self.type == "in-cluster") == (self.secret_ref is not None):
            raise ValueError("secretRef is required for every credential type but in-cluster")
        return self


class PilotSettings(ApiModel):
    """What every pilot of this request looks like and how long it lives."""

    # Bounds (see DurationRange): each minimum is the least that still means something
    # for the field; the maximum, a year, fits every consumer (timedelta, CEL, Go).
    lifetime: Annotated[str, DurationRange("1m")] = Field(
        default="24h",
        description=(
            "Hard lifetime: the pilot shuts down at its end, stopping any job still "
            "running, and the operator terminates what outlives it. From 1m (a pilot "
            "needs that to boot, register and run anything) to 8760h."
        ),
    )
    idle_timeout: Annotated[str, DurationRange("1s")] = Field(
        default="20m",
        description=(
            "A pilot with no job for this long shuts down. From 1s (HTCondor counts whole "
            "seconds) to 8760h."
        ),
    )
    registration_timeout: Annotated[str, DurationRange("1s")] = Field(
        default="15m",
        description=(
            "A pilot not registered in the collector this long after launch is stuck: its "
            "console log is kept and it is terminated. From 1s to 8760h; a VM usually needs "
            "a few minutes to boot and register."
        ),
    )
    retire_before_end: Annotated[str, DurationRange("10s")] = Field(
        default="1h",
        description=(
            "Retire window: this long before the lifetime ends the pilot takes no new job; "
            "the running ones may finish within it, then the pilot shuts down. From 10s "
            "(time to stop matching before the end) to 8760h, and shorter than lifetime."
        ),
    )
    start_expression: ConfigClassAdExpression = Field(
        default="true",
        description=(
            "ClassAd expression used as the pilot's START: which jobs it accepts. One line; "
            "checked with HTCondor's ClassAd parser."
        ),
    )
    partitionable: bool = Field(
        default=True, description="One partitionable slot sized to the machine, shared by jobs."
    )
    extra_config: dict[str, str] = Field(
        default_factory=dict, description="Extra HTCondor configuration knobs for the pilot."
    )
    ccb: bool = Field(
        default=False,
        description=(
            "Register through the collector's CCB: for pilots behind NAT or a firewall that "
            "refuses inbound connections (schedds then reach the pilot through the "
            "collector). Sets CCB_ADDRESS = $(COLLECTOR_HOST); off, the pilot sets no CCB "
            "address, whatever its image's configuration says."
        ),
    )
    shared_port: bool = Field(
        default=False,
        description=(
            "One inbound port for all of the pilot's daemons (condor_shared_port on 9618), "
            "for sites whose firewall opens a single port. Off, each daemon listens on "
            "its own ephemeral port."
        ),
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret with the user pool's IDTOKEN signing key (key signingKey: the POOL file "
            "from passwords.d, as HTCondor stores it), from which the operator mints a "
            "short-lived token per launch batch that may only advertise a startd; or with "
            "a ready token (key token). Cloud credentials never reach a pilot."
        ),
    )

    cel_rules = (
        CelRule(
            # A value the pattern refuses is reported there; duration() would only add a
            # conversion error about it.
            f"!({cel_is_duration('self.retireBeforeEnd')} && {cel_is_duration('self.lifetime')})"
            " || duration(self.retireBeforeEnd) < duration(self.lifetime)",
            "retireBeforeEnd must be shorter than lifetime",
            ".retireBeforeEnd",
        ),
    )

    # The durations as timedeltas, for the code that uses them (the fields stay the text
    # the user wrote, which is what the API server stores). Read from the field at each
    # use, so a copy with another value never carries a stale one.

    @property
    def lifetime_td(self) -> dt.timedelta:
        return parse_duration(self.lifetime)

    @property
    def idle_timeout_td(self) -> dt.timedelta:
        return parse_duration(self.idle_timeout)

    @property
    def registration_timeout_td(self) -> dt.timedelta:
        return parse_duration(self.registration_timeout)

    @property
    def retire_before_end_td(self) -> dt.timedelta:
        return parse_duration(self.retire_before_end)

    @model_validator(mode="after")
    def _retire_within_lifetime(self) -> PilotSettings:
        if self.retire_before_end_td >= self.lifetime_td:
            raise ValueError("retireBeforeEnd must be shorter than lifetime")
        return self


class RequestLimits(ApiModel):
    """Limits over all entries of the request (GlideinWMS group limits)."""

    min_pilots: Int = Field(
        default=0, ge=0, description="Pilots kept alive even with an empty queue (warm pool)."
    )
    max_pilots: Int = Field(
        default=100, ge=0, description="Most pilots alive, all entries together."
    )
    max_idle_pilots: Int | None = Field(
        default=None,
        ge=0,
        description=(
            "Most pilots launched and not running a job, all entries together; absent means "
            "only maxPilots bounds them."
        ),
    )
    curb_idle_pilots: Int | None = Field(
        default=None,
        ge=0,
        description="Past this many idle pilots, ask for new ones more slowly (GlideinWMS curb).",
    )
    reserve_idle_pilots: Int = Field(
        default=0, ge=0, description="Idle pilots kept beyond what the queue needs, for bursts."
    )
    max_pilots_per_entry: Int | None = Field(
        default=None, ge=0, description="Most pilots of this request at any one entry."
    )

    cel_rules = (
        CelRule(
            "self.minPilots <= self.maxPilots", "minPilots must not exceed maxPilots", ".minPilots"
        ),
        CelRule(
            "!has(self.maxIdlePilots) || self.maxIdlePilots <= self.maxPilots",
            "maxIdlePilots must not exceed maxPilots",
            ".maxIdlePilots",
        ),
        CelRule(
            "!has(self.curbIdlePilots) || self.curbIdlePilots <= "
            "(has(self.maxIdlePilots) ? self.maxIdlePilots : self.maxPilots)",
            "curbIdlePilots must not exceed maxIdlePilots (or maxPilots)",
            ".curbIdlePilots",
        ),
        CelRule(
            "self.reserveIdlePilots <= (has(self.maxIdlePilots) ? self.maxIdlePilots : self.maxPilots)",
            "reserveIdlePilots must not exceed maxIdlePilots (or maxPilots)",
            ".reserveIdlePilots",
        ),
    )

    @property
    def idle_cap(self) -> int:
        """The effective bound on idle pilots."""
        return self.max_pilots if self.max_idle_pilots is None else self.max_idle_pilots

    @model_validator(mode="after")
    def _ordered(self) -> RequestLimits:
        if self.min_pilots > self.max_pilots:
            raise ValueError("minPilots must not exceed maxPilots")
        if self.max_idle_pilots is not None and self.max_idle_pilots > self.max_pilots:
            raise ValueError("maxIdlePilots must not exceed maxPilots")
        if self.curb_idle_pilots is not None and self.curb_idle_pilots > self.idle_cap:
            raise ValueError("curbIdlePilots must not exceed maxIdlePilots (or maxPilots)")
        if self.reserve_idle_pilots > self.idle_cap:
            raise ValueError("reserveIdlePilots must not exceed maxIdlePilots (or maxPilots)")
        return self


class Budget(ApiModel):
    """Money: a limit per period, a warning, a gate on launches, and a kill switch."""

    limit: Money = Field(description="Most to spend per period, in the entries' price currency.")
    period: Literal["daily", "weekly", "monthly"] = Field(
        default="monthly", description="Budget period; spend resets at its start (UTC)."
    )
    warn_at: float = Field(
        default=0.8, ge=0, le=1, description="Fraction of the limit that raises a BudgetWarning."
    )
    kill_at: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Fraction of the limit at which all cloud pilots are drained and terminated.",
    )
    kill_switch: bool = Field(
        default=False,
        description="Drain and terminate all cloud pilots of this request now ('we are going over budget').",
    )
    per_entry: Annotated[dict[str, Money], MapKeys(what="a CloudEntry name")] = Field(
        default_factory=dict,
        description="Optional limit per period for individual entries, by CloudEntry name.",
    )
    kill_grace_period: Duration = Field(
        default="10m",
        description=(
            "Once the kill switch is on, pilots running jobs get this long to finish before "
            "they are terminated; idle and booting pilots go at once. From 0s (terminate "
            "at once) to 8760h."
        ),
    )

    cel_rules = (
        CelRule(
            "!has(self.killAt) || self.killAt >= self.warnAt",
            "killAt must not be below warnAt",
            ".killAt",
        ),
    )

    @property
    def kill_grace_period_td(self) -> dt.timedelta:
        """``killGracePeriod`` as a timedelta."""
        return parse_duration(self.kill_grace_period)

    @model_validator(mode="after")
    def _kill_after_warn(self) -> Budget:
        if self.kill_at is not None and self.kill_at < self.warn_at:
            raise ValueError("killAt must not be below warnAt")
        return self


class GlideinRequestSpec(ApiModel):
    """A community's request for pilots: which jobs, where, with which credentials and limits."""

    collector: str = Field(
        min_length=1,
        max_length=512,
        description="The user pool's collector (host[:port]) pilots register with.",
    )
    pool_trust_domain: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^[^\s,]+$",
        description=(
            "The user pool's TRUST_DOMAIN, exactly as its collector's configuration sets it "
            "(condor_config_val TRUST_DOMAIN): the issuer of the tokens pilots present. A "
            "token whose issuer differs is ignored by the pilot and refused by the "
            "collector. Absent means HTCondor's own default, the collector string as "
            "written above, port included."
        ),
    )
    operator_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret with an IDTOKEN (key token, or the key named) the operator presents to "
            "this pool's collector and schedds; READ authorization is enough. Absent: when "
            "pilot.tokenSecretRef holds the pool's signingKey, the operator mints itself a "
            "short-lived READ token (identity glidein-operator@<trust domain>); otherwise it "
            "queries without authenticating, which works where the pool lets anyone READ."
        ),
    )
    schedds: Annotated[list[ScheddRef], ListMap(("name",))] = Field(
        min_length=1, description="Schedds whose idle jobs count; one item per name."
    )
    job_constraint: ClassAdExpression = Field(
        default="true",
        description=(
            "ClassAd constraint selecting which idle jobs this request serves; checked with "
            "HTCondor's ClassAd parser."
        ),
    )
    match_expression: ClassAdExpression = Field(
        default="true",
        description=(
            "ClassAd expression evaluated with MY = the entry's machine ad and TARGET = the "
            "job cluster, ANDed with the jobs' own Requirements; checked with HTCondor's "
            "ClassAd parser."
        ),
    )
    entries: EntrySelection = Field(
        default_factory=EntrySelection, description="Which CloudEntries may serve this request."
    )
    credentials: Annotated[list[Credential], ListMap(("trustDomain", "type"))] = Field(
        min_length=1,
        description=(
            "Credentials per trust domain, from Secrets in this namespace; one item per "
            "trust domain and type."
        ),
    )
    pilot: PilotSettings = Field(default_factory=PilotSettings, description="Pilot settings.")
    limits: RequestLimits = Field(default_factory=RequestLimits, description="Request-wide limits.")
    budget: Budget | None = Field(default=None, description="Spending limit; absent means none.")
    paused: bool = Field(
        default=False, description="Start no new pilots; those running finish their work."
    )
    placement: Literal["cost", "spread"] = Field(
        default="cost",
        description=(
            "When several entries can run the same jobs: 'cost' fills the entry with the "
            "lowest price per useful core first (weighted by how full it is) and spills to "
            "the next; 'spread' shares the jobs evenly."
        ),
    )

    def trust_domain(self) -> str:
        """The issuer of the pool's tokens (HTCondor's default TRUST_DOMAIN is
        $(COLLECTOR_HOST), port kept)."""
        return self.pool_trust_domain or self.collector


class EntryStatus(ApiModel):
    """The request's figures at one entry, with the reason for the number wanted."""

    name: str = Field(description="CloudEntry name.")
    idle_jobs: Int = Field(default=0, ge=0, description="Idle jobs matched to this entry.")
    wanted: Int = Field(default=0, ge=0, description="Pilots the plan wants here.")
    launching: Int = Field(default=0, ge=0, description="Pilots launched, not yet registered.")
    running: Int = Field(default=0, ge=0, description="Pilots registered and running jobs.")
    idle: Int = Field(default=0, ge=0, description="Pilots registered with no job.")
    stuck: Int = Field(default=0, ge=0, description="Pilots that never registered in time.")
    bound_by: str = Field(default="", description="The limit or reason that set 'wanted'.")
    last_batch: Int | None = Field(
        default=None,
        ge=0,
        description=(
            "The last launch batch number used here; batch keys never repeat (a cloud "
            "remembers an idempotency token long after its pilots are gone)."
        ),
    )


class RequestTotals(ApiModel):
    """Totals over all entries, shown by kubectl get."""

    idle_jobs: Int = Field(default=0, ge=0, description="Idle jobs this request serves.")
    wanted: Int = Field(default=0, ge=0, description="Pilots wanted.")
    launching: Int = Field(default=0, ge=0, description="Pilots booting.")
    running: Int = Field(default=0, ge=0, description="Pilots running jobs.")
    idle: Int = Field(default=0, ge=0, description="Pilots idle.")
    uncovered_jobs: Int = Field(
        default=0,
        ge=0,
        description=(
            "Idle jobs this cycle launches no pilot for (.status.uncovered says what bound "
            "them: pilots already there, a limit, ramp-up, the budget, no entry)."
        ),
    )


class Usage(ApiModel):
    """Pilot-hours, core-hours and cost."""

    spent: Money = Field(default=Decimal(0), description="Cost, in the entries' price currency.")
    pilot_hours: Money = Field(default=Decimal(0), description="Hours of pilot life.")
    core_hours: Money = Field(default=Decimal(0), description="Hours of pilot life times cores.")


class EntrySpend(Usage):
    """Accounting at one entry in the current period."""

    name: str = Field(description="CloudEntry name.")


class PeriodSpend(Usage):
    """Accounting of a closed period."""

    start: Timestamp = Field(description="Start of the period.")
    end: Timestamp = Field(description="End of the period.")


class SpendStatus(Usage):
    """Accounting in the current budget period, rebuilt from the clouds' launch times."""

    period: Literal["daily", "weekly", "monthly"] = Field(
        default="monthly", description="Accounting period (the budget's, monthly without one)."
    )
    period_start: Timestamp | None = Field(default=None, description="Start of the period.")
    accounted_until: Timestamp | None = Field(
        default=None, description="Pilot time is accounted up to this instant."
    )
    entries: Annotated[list[EntrySpend], ListMap(("name",))] = Field(
        default_factory=list, description="Accounting per entry."
    )
    previous_period: PeriodSpend | None = Field(default=None, description="The last period.")
    limit: Money | None = Field(default=None, description="The budget limit for the period.")
    committed: Money | None = Field(
        default=None,
        description="What pilots alive now may still cost in this period, at worst.",
    )
    left: Money | None = Field(default=None, description="Limit minus spent.")


class PilotLog(ApiModel):
    """The console log of a pilot the operator reaped as stuck or failed."""

    pilot_id: str = Field(description="Pilot id (batch key and index).")
    entry: str = Field(description="CloudEntry it ran at.")
    cloud_id: str = Field(default="", description="The back end's id (instance, server, VM, job).")
    reason: str = Field(description="Why it was reaped.")
    state: str = Field(default="", description="Its state as the back end reported it.")
    at: Timestamp = Field(description="When it was reaped.")
    log: str = Field(max_length=8192, description="The end of its console log.")


class UncoveredJobs(ApiModel):
    """Idle jobs the last cycle launched no pilot for, and the one thing that bound them."""

    jobs: Int = Field(ge=0, description="How many.")
    bound_by: str = Field(
        max_length=256,
        description=(
            "What bound them: 'pilots already there' (they wait for pilots booting, idle or "
            "with room left), a limit's name (entry.maxPilots, request.maxPilots, ...), "
            "'rampUp', 'budget', 'backoff', 'entry.launchesPerMinute', or 'no entry'."
        ),
    )
    entries: list[str] = Field(
        default_factory=list, max_length=50, description="The CloudEntries concerned."
    )
    message: str = Field(max_length=1024, description="The same, as a sentence.")


class GlideinRequestStatus(ApiModel):
    """What the operator observed and decided for this request."""

    observed_generation: Int | None = Field(
        default=None, ge=0, description="The .metadata.generation last reconciled."
    )
    totals: RequestTotals = Field(default_factory=RequestTotals, description="Totals.")
    entries: Annotated[list[EntryStatus], ListMap(("name",))] = Field(
        default_factory=list, description="Figures per entry."
    )
    spend: SpendStatus | None = Field(default=None, description="Budget period spend.")
    uncovered: list[UncoveredJobs] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "Why idle jobs are left without a new pilot after the last cycle, largest "
            'groups first (e.g. "320 jobs match only entry X, which is full '
            '(entry.maxPilots)").'
        ),
    )
    pilot_logs: list[PilotLog] = Field(
        default_factory=list,
        max_length=20,
        description="Console logs of the last pilots reaped as stuck or failed, newest last.",
    )
    conditions: Conditions = conditions_field()
