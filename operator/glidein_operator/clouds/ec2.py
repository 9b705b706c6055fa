"""EC2 (and EC2-compatible clouds) through boto3.

One RunInstances per batch (MinCount=1, MaxCount=count, ClientToken=batch key), tags
written atomically through TagSpecifications, one paginated DescribeInstances per entry
per cycle. Retries of throttled calls are botocore's ("standard" retry mode); what still
fails is mapped to the domain errors of ``base`` by ``map_sdk_error``.

SSH keys. A key pair per VM (the seeds' model: a leaked key opens one VM) cannot be had
with one RunInstances for many VMs, since a call takes one KeyName. ``key_pairs`` (the
entry's ``ec2.keyPairs``) chooses: "perBatch" (default: one fresh key pair per launch call, so a key opens at most
``maxLaunchPerCycle`` VMs), "perVM" (one call per VM, the seeds' model, at N calls), or
"none". The private half is never kept: nobody logs in with it, and no shared key
exists to leak; admins read console logs instead. Key pairs are deleted once no pilot of
their batch is alive.

Old EC2-compatible clouds (``ec2.compatibility``). An endpoint may lack TagSpecifications
at launch, ClientToken, or IMDSv2 (MetadataOptions). Without launch tags the key pair is
created and tagged first, then the instances are started untagged and tagged at once; the
key pair's name (``glidein-{token}``, given to every instance at creation) is the mark by
which a listing finds and tags instances a crash left untagged. Without ClientToken, a
launch first lists the instances carrying that key name and starts nothing if there are
some, and RunInstances is sent once (no SDK retry), since a retry without a token can
double a batch. With IMDSv2 (the default) pilots are launched with session tokens
required.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    ParamValidationError,
)
from botocore.handlers import generate_idempotent_uuid

from glidein_operator.api.cloudentry import Ec2Settings
from glidein_operator.clouds.base import (
    AuthError,
    DriverError,
    InsufficientCapacity,
    InvalidConfig,
    NotFound,
    QuotaExceeded,
    Throttled,
    Unavailable,
    old_enough,
)
from glidein_operator.ground import (
    ALIVE_STATES,
    CloudPilot,
    LaunchBatch,
    PilotState,
    Tag,
    price_from_tags,
)

USER_DATA_LIMIT = 16 * 1024  # bytes, before base64 (EC2's limit)
# Seconds. EC2 answers in well under a second; RunInstances of a large batch in a few.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
KeyPairMode = Literal["perBatch", "perVM", "none"]

_STATES = {
    "pending": PilotState.PENDING,
    "running": PilotState.RUNNING,
    "shutting-down": PilotState.TERMINATED,
    "terminated": PilotState.TERMINATED,
    "stopping": PilotState.SHUTDOWN,
    "stopped": PilotState.SHUTDOWN,
}

_AUTH = {
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "OptInRequired",
    "Blocked",
}
_QUOTA = {
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "ResourceLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "KeyPairLimitExceeded",
}
_CAPACITY = {
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "SpotMaxPriceTooLow",
    "InsufficientReservedInstanceCapacity",
}
_THROTTLE = {
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
}


def map_sdk_error(exc: BaseException, entry: str) -> DriverError | None:
    """botocore exceptions -> the domain taxonomy (the one place this happens); None for
    anything else."""
    if isinstance(exc, EndpointConnectionError):
        return Unavailable(f"EC2 endpoint unreachable: {exc}", entry=entry)
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        text = f"{code}: {message}"
        if code in _AUTH:
            return AuthError(text, entry=entry)
        if code in _QUOTA:
            return QuotaExceeded(text, entry=entry)
        if code in _CAPACITY:
            return InsufficientCapacity(text, entry=entry)
        if code in _THROTTLE:
            return Throttled(text, entry=entry)
        if code.endswith(".NotFound") or code.endswith("NotFound"):
            return NotFound(text, entry=entry)
        if status >= 500 or code in ("InternalError", "Unavailable", "ServiceUnavailable"):
            return Unavailable(text, entry=entry)
        return InvalidConfig(text, entry=entry)
    if isinstance(exc, ParamValidationError):
        # Refused before it was sent: trying again sends the same.
        return InvalidConfig(f"EC2 request refused by botocore: {exc}", entry=entry)
    if isinstance(exc, BotoCoreError):  # timeouts, resets, unreadable answers
        return Unavailable(f"EC2 call failed: {exc}", entry=entry)
    return None


class Ec2Driver:
    """Pilots as EC2 instances at one entry."""

    def __init__(
        self,
        entry: str,
        settings: Ec2Settings,
        *,
        access_key_id: str,
        secret_access_key: str,
        operator_id: str,
        key_pairs: KeyPairMode | None = None,
        page_size: int = 1000,
        max_attempts: int = 4,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.entry = entry
        self.settings = settings
        self.operator_id = operator_id
        self.key_pairs: KeyPairMode = key_pairs or settings.key_pairs
        self.page_size = page_size
        self.compat = settings.compatibility
        if not self.compat.client_token and self.key_pairs == "none":
            # The key pair's name is the only mark of a launch without a ClientToken.
            raise InvalidConfig(
                "an endpoint without ClientToken needs key pairs (perBatch or perVM): "
                "their names mark a launch, so that a retry finds its instances",
                entry=entry,
            )
        if not self.compat.tags_at_launch and self.key_pairs == "none":
            raise InvalidConfig(
                "an endpoint without launch tags needs key pairs (perBatch or perVM): "
                "their names find instances a crash left untagged",
                entry=entry,
            )

        def client(attempts: int) -> Any:
            return boto3.client(
                "ec2",
                region_name=settings.region,
                endpoint_url=settings.endpoint_url,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                # botocore retries a timed-out attempt (with the same ClientToken): an
                # endpoint that accepts and never answers costs up to max_attempts *
                # read_timeout (and the retry waits) per request.
                config=Config(
                    retries={"mode": "standard", "total_max_attempts": attempts},
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    max_pool_connections=10,
                ),
            )

        self._client = client(max_attempts)
        # Without a ClientToken a retried RunInstances may start the batch twice: it is sent
        # once, and a failure waits for the next cycle's list-before-create.
        self._launch_client = self._client if self.compat.client_token else client(1)
        if not self.compat.client_token:
            # botocore fills in a random ClientToken (RunInstances' idempotency member)
            # when none is given, which such an endpoint refuses as an unknown parameter.
            self._launch_client.meta.events.unregister(
                "before-parameter-build", generate_idempotent_uuid
            )

    def map_error(self, exc: BaseException) -> DriverError | None:
        return map_sdk_error(exc, self.entry)

    # --- launch ------------------------------------------------------------------------

    def launch(self, batch: LaunchBatch) -> list[CloudPilot]:
        if len(batch.user_data) > USER_DATA_LIMIT:
            raise InvalidConfig(
                f"user data is {len(batch.user_data)} bytes; EC2 takes at most {USER_DATA_LIMIT}",
                entry=self.entry,
            )
        if not batch.image_id:
            raise InvalidConfig("no image id for an EC2 launch", entry=self.entry)
        if self.key_pairs == "perVM":
            out: list[CloudPilot] = []
            for index in range(batch.count):
                out += self._run_or_fall_back(batch, index, 1, f"-{index}")
            return out
        return self._run_or_fall_back(batch, 0, batch.count, "")

    def _run_or_fall_back(
        self, batch: LaunchBatch, index_base: int, count: int, token_suffix: str
    ) -> list[CloudPilot]:
        """Spot first; on a spot capacity error, the same pilots on-demand when the entry
        allows it. The on-demand try has a ClientToken of its own (AWS refuses one token
        with other parameters), as deterministic as the first: a retry after a crash
        finds the instances either try started."""
        try:
            return self._run(batch, index_base=index_base, count=count, token_suffix=token_suffix)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if not (batch.spot and batch.spot_fallback and code in _CAPACITY):
                raise
        on_demand = dataclasses.replace(batch, spot=False, spot_max_price=None)
        return self._run(
            on_demand, index_base=index_base, count=count, token_suffix=token_suffix + "-od"
        )

    def _run(
        self, batch: LaunchBatch, *, index_base: int, count: int, token_suffix: str
    ) -> list[CloudPilot]:
        token = (batch.key + token_suffix)[-64:]  # ClientToken: at most 64 ASCII characters
        tags = {**batch.tags(), Tag.OPERATOR: self.operator_id}
        if self.key_pairs == "perVM":
            tags[Tag.PILOT_ID] = batch.pilot_id(index_base)
        params: dict[str, Any] = {
            "ImageId": batch.image_id,
            "InstanceType": batch.shape.name,
            "MinCount": 1,
            "MaxCount": count,
            "UserData": batch.user_data.decode("utf-8"),
            # Pilots shut themselves down at the end of their life; that must end the VM.
            "InstanceInitiatedShutdownBehavior": "terminate",
        }
        if self.compat.client_token:
            params["ClientToken"] = token
        if self.compat.tags_at_launch:
            params["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": _tag_list(tags)},
                {"ResourceType": "volume", "Tags": _tag_list(tags)},
            ]
        if self.compat.imds_v2:
            # A job on the pilot cannot read the metadata (user data, role credentials) by
            # a plain GET: the SSRF path to them.
            params["MetadataOptions"] = {"HttpTokens": "required", "HttpEndpoint": "enabled"}
        if self.key_pairs != "none":
            params["KeyName"] = self._ensure_key_pair(token, tags)
        s = self.settings
        if s.subnet_id:
            params["SubnetId"] = s.subnet_id
        if s.security_group_ids:
            params["SecurityGroupIds"] = list(s.security_group_ids)
        if s.availability_zone:
            params["Placement"] = {"AvailabilityZone": s.availability_zone}
        if s.instance_profile:
            key = "Arn" if s.instance_profile.startswith("arn:") else "Name"
            params["IamInstanceProfile"] = {key: s.instance_profile}
        if batch.spot:
            spot: dict[str, Any] = {
                "SpotInstanceType": "one-time",
                "InstanceInterruptionBehavior": "terminate",
            }
            if batch.spot_max_price is not None:
                spot["MaxPrice"] = str(batch.spot_max_price)
            params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
        instances: list[dict[str, Any]] = []
        if not self.compat.client_token:
            # List before create: the instances of an earlier try of this batch carry its
            # key pair's name from their creation, tagged or not. Like a ClientToken, the
            # mark returns them (dead or alive) instead of starting more.
            instances = self._marked([params["KeyName"]])
        if not instances:
            instances = self._launch_client.run_instances(**params)["Instances"]
        if not self.compat.tags_at_launch:
            instances = self._tag_untagged(instances, tags)
        return [
            self._pilot(i, batch.key if self.key_pairs != "perVM" else None, index_base)
            for i in instances
        ]

    def _marked(self, key_names: Sequence[str]) -> list[dict[str, Any]]:
        """Instances (ours or not yet tagged) launched with these key pairs."""
        found: list[dict[str, Any]] = []
        names = sorted(set(key_names))
        for start in range(0, len(names), 200):
            paginator = self._client.get_paginator("describe_instances")
            for page in paginator.paginate(
                Filters=[{"Name": "key-name", "Values": names[start : start + 200]}],
                PaginationConfig={"PageSize": self.page_size},
            ):
                for reservation in page["Reservations"]:
                    found += reservation["Instances"]
        return found

    def _tag_untagged(
        self, instances: list[dict[str, Any]], tags: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Tag (CreateTags) those of ``instances`` that lack our tags; the instances as they
        are once tagged."""
        bare = [
            i["InstanceId"]
            for i in instances
            if {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get(Tag.OPERATOR)
            != self.operator_id
        ]
        for start in range(0, len(bare), 500):
            self._client.create_tags(Resources=bare[start : start + 500], Tags=_tag_list(tags))
        mine = set(bare)
        return [
            {**i, "Tags": _tag_list({**_tags_of(i), **tags})} if i["InstanceId"] in mine else i
            for i in instances
        ]

    def _ensure_key_pair(self, name_seed: str, tags: dict[str, str]) -> str:
        name = f"glidein-{name_seed}"[:255]
        extra: dict[str, Any] = {}
        if self.compat.tags_at_launch:
            extra["TagSpecifications"] = [{"ResourceType": "key-pair", "Tags": _tag_list(tags)}]
        try:
            reply = self._client.create_key_pair(KeyName=name, KeyType="ed25519", **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidKeyPair.Duplicate":
                raise
            # A retry of the same batch: the key pair from the first try is ours.
            if self.compat.tags_at_launch:
                return name
            reply = self._client.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
        # Without launch tags: tagged before any instance exists, the key pair is the record
        # by which a listing finds (by name) the instances of a launch never tagged. The
        # first try (or a crash) may have left it untagged; tagging again is a no-op. (An
        # endpoint whose key pairs have no id cannot tag them: its listing then finds no
        # record, and a crash's untagged instances wait for a retry of their batch.)
        if not self.compat.tags_at_launch and reply.get("KeyPairId"):
            self._client.create_tags(Resources=[reply["KeyPairId"]], Tags=_tag_list(tags))
        return name

    # --- list --------------------------------------------------------------------------

    def _instances(self, extra_filters: Sequence[dict[str, Any]] = ()) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("describe_instances")
        filters = [
            {"Name": f"tag:{Tag.OPERATOR}", "Values": [self.operator_id]},
            {"Name": f"tag:{Tag.ENTRY}", "Values": [self.entry]},
            *extra_filters,
        ]
        for page in paginator.paginate(
            Filters=filters, PaginationConfig={"PageSize": self.page_size}
        ):
            for reservation in page["Reservations"]:
                yield from reservation["Instances"]

    def list_pilots(self) -> list[CloudPilot]:
        instances = list(self._instances())
        if not self.compat.tags_at_launch:
            instances += self._heal_untagged({i["InstanceId"] for i in instances})
        pilots = [self._pilot(i) for i in instances]
        return self._spot_prices(instances, pilots)

    def _heal_untagged(self, listed: set[str]) -> list[dict[str, Any]]:
        """Instances a crash between RunInstances and CreateTags left untagged: they carry
        the name of one of our key pairs (tagged before the launch), whose tags they get."""
        pairs = self._client.describe_key_pairs(
            Filters=[
                {"Name": f"tag:{Tag.OPERATOR}", "Values": [self.operator_id]},
                {"Name": f"tag:{Tag.ENTRY}", "Values": [self.entry]},
            ]
        ).get("KeyPairs", [])
        tags_of = {kp["KeyName"]: _tags_of(kp) for kp in pairs}
        if not tags_of:
            return []
        healed: list[dict[str, Any]] = []
        for inst in self._marked(list(tags_of)):
            if inst["InstanceId"] in listed or inst.get("KeyName") not in tags_of:
                continue
            healed += self._tag_untagged([inst], tags_of[inst["KeyName"]])
        return healed

    def _spot_prices(
        self, instances: list[dict[str, Any]], pilots: list[CloudPilot]
    ) -> list[CloudPilot]:
        """Running spot pilots cost the market price of their type and zone, not the cap
        they were launched with: one DescribeSpotPriceHistory per listing, only when spot
        pilots run. If it fails, the caps stand (accounting errs on the dear side)."""
        spot = {
            i["InstanceId"]: (
                i.get("InstanceType", ""),
                i.get("Placement", {}).get("AvailabilityZone", ""),
            )
            for i in instances
            if i.get("InstanceLifecycle") == "spot"
            and i.get("State", {}).get("Name") in ("pending", "running")
        }
        if not spot:
            return pilots
        try:
            reply = self._client.describe_spot_price_history(
                InstanceTypes=sorted({t for t, _ in spot.values()}),
                ProductDescriptions=["Linux/UNIX"],
                StartTime=dt.datetime.now(dt.UTC),
            )
        except (ClientError, BotoCoreError):
            return pilots  # an estimate: never worth failing the listing over
        latest: dict[tuple[str, str], tuple[dt.datetime | str, Decimal]] = {}
        for h in reply.get("SpotPriceHistory", []):
            key = (h["InstanceType"], h["AvailabilityZone"])
            stamp = h.get("Timestamp", "")
            if key not in latest or str(stamp) > str(latest[key][0]):
                latest[key] = (stamp, Decimal(h["SpotPrice"]))
        return [
            dataclasses.replace(p, price_per_hour=latest[spot[p.cloud_id]][1])
            if p.cloud_id in spot and spot[p.cloud_id] in latest
            else p
            for p in pilots
        ]

    def _pilot(
        self, inst: dict[str, Any], batch_key: str | None = None, index_base: int = 0
    ) -> CloudPilot:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        batch = tags.get(Tag.BATCH, batch_key or "")
        pilot_id = (
            tags.get(Tag.PILOT_ID) or f"{batch}-{int(inst.get('AmiLaunchIndex', 0)) + index_base}"
        )
        state = inst.get("State", {}).get("Name", "")
        launched = inst.get("LaunchTime")
        return CloudPilot(
            pilot_id=pilot_id,
            cloud_id=inst["InstanceId"],
            entry=tags.get(Tag.ENTRY, self.entry),
            request_uid=tags.get(Tag.REQUEST_UID, ""),
            batch=batch,
            instance_type=tags.get(Tag.INSTANCE_TYPE, inst.get("InstanceType", "")),
            state=_STATES.get(state, PilotState.UNKNOWN),
            launched_at=launched if isinstance(launched, dt.datetime) else None,
            spot=tags.get(Tag.SPOT) == "true" or inst.get("InstanceLifecycle") == "spot",
            raw_state=state,
            extra={"keyName": inst.get("KeyName", "")} if inst.get("KeyName") else {},
            price_per_hour=price_from_tags(tags),
            ended_at=_ended_at(inst) if state in ("shutting-down", "terminated") else None,
            interrupted=inst.get("StateReason", {}).get("Code") == SPOT_INTERRUPTED,
            shut_itself_down=inst.get("StateReason", {}).get("Code") == SELF_SHUTDOWN,
        )

    # --- terminate ---------------------------------------------------------------------

    def terminate(self, pilots: Sequence[CloudPilot]) -> None:
        ids = [p.cloud_id for p in pilots if p.state is not PilotState.TERMINATED]
        for start in range(0, len(ids), 1000):
            self._terminate_ids(ids[start : start + 1000])
        batches = {p.batch for p in pilots if p.batch}
        if batches and self.key_pairs != "none":
            self._delete_key_pairs(batches)

    def _terminate_ids(self, ids: list[str]) -> None:
        if not ids:
            return
        try:
            self._client.terminate_instances(InstanceIds=ids)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                raise
            # Some are already gone (done); terminate the rest one by one.
            for instance_id in ids:
                try:
                    self._client.terminate_instances(InstanceIds=[instance_id])
                except ClientError as inner:
                    if inner.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                        raise

    def _delete_key_pairs(self, batches: set[str]) -> None:
        """Delete the key pairs of these batches once none of their instances is alive."""
        alive = {
            p.batch
            for p in (
                self._pilot(i)
                for i in self._instances([{"Name": f"tag:{Tag.BATCH}", "Values": sorted(batches)}])
            )
            if p.state in (PilotState.PENDING, PilotState.RUNNING, PilotState.SHUTDOWN)
        }
        reply = self._client.describe_key_pairs(
            Filters=[
                {"Name": f"tag:{Tag.OPERATOR}", "Values": [self.operator_id]},
                {"Name": f"tag:{Tag.BATCH}", "Values": sorted(batches)},
            ]
        )
        for kp in reply.get("KeyPairs", []):
            tags = {t["Key"]: t["Value"] for t in kp.get("Tags", [])}
            if tags.get(Tag.BATCH) not in alive:
                self._client.delete_key_pair(KeyName=kp["KeyName"])

    def collect(self, request_uid: str | None = None, min_age_seconds: float = 0.0) -> int:
        filters = [
            {"Name": f"tag:{Tag.OPERATOR}", "Values": [self.operator_id]},
            {"Name": f"tag:{Tag.ENTRY}", "Values": [self.entry]},
        ]
        if request_uid:
            filters.append({"Name": f"tag:{Tag.REQUEST_UID}", "Values": [request_uid]})
        pairs = self._client.describe_key_pairs(Filters=filters).get("KeyPairs", [])
        if not pairs:
            return 0
        alive = {p.batch for p in self.list_pilots() if p.state in ALIVE_STATES}
        deleted = 0
        for kp in pairs:
            tags = {t["Key"]: t["Value"] for t in kp.get("Tags", [])}
            if tags.get(Tag.BATCH) in alive or not old_enough(
                kp.get("CreateTime"), min_age_seconds
            ):
                continue
            self._client.delete_key_pair(KeyName=kp["KeyName"])
            deleted += 1
        return deleted

    def key_pairs_left(self) -> list[str]:
        """Names of our key pairs at this entry (for garbage collection and tests)."""
        reply = self._client.describe_key_pairs(
            Filters=[
                {"Name": f"tag:{Tag.OPERATOR}", "Values": [self.operator_id]},
                {"Name": f"tag:{Tag.ENTRY}", "Values": [self.entry]},
            ]
        )
        return sorted(kp["KeyName"] for kp in reply.get("KeyPairs", []))

    # --- logs and images -----------------------------------------------------------------

    def console_log(self, pilot: CloudPilot) -> str:
        try:
            reply = self._client.get_console_output(InstanceId=pilot.cloud_id, Latest=True)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidInstanceID.NotFound":
                return ""
            raise
        # botocore has already decoded the base64 EC2 sends (its decode_console_output
        # handler); decoding again turned every console log into noise.
        return str(reply.get("Output") or "")

    def image_exists(self, image_id: str) -> bool:
        try:
            return bool(self._client.describe_images(ImageIds=[image_id]).get("Images"))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in (
                "InvalidAMIID.NotFound",
                "InvalidAMIID.Malformed",
                "InvalidAMIID.Unavailable",
            ):
                return False
            raise


# StateTransitionReason of a terminated instance: "User initiated (2026-11-23 21:00:00 GMT)".
_TRANSITION_TIME = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)")
SPOT_INTERRUPTED = "Server.SpotInstanceTermination"
SELF_SHUTDOWN = "Client.InstanceInitiatedShutdown"


def _ended_at(inst: dict[str, Any]) -> dt.datetime | None:
    m = _TRANSITION_TIME.search(inst.get("StateTransitionReason") or "")
    if m is None:
        return None
    return dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)


def _tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
