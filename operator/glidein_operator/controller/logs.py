"""Log lines an admin can read: each names its object, in text or JSON, at a set level.

kopf prefixes the lines of its own per-object loggers with ``[namespace/name]`` (only
when asked: ``log_prefix``). The operator's modules log through plain module loggers,
so a handler says which object it works on (``about``) and every record made while it
runs carries the same reference: the prefix in text, the ``object`` key in JSON. Those
records never become Kubernetes Events (``k8s_skip``); Events are posted on purpose.

A timer that succeeded is no news: kopf says so at INFO for every request every few
seconds. Those lines are DEBUG here.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

import kopf

LogFormat = Literal["text", "json"]

_about: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "glidein_object", default=None
)
_TIMER_SUCCEEDED = re.compile(r"^Timer '[^']*' succeeded\.$")


def about(body: Mapping[str, Any]) -> None:
    """The object the running handler (its task, and threads it starts) works on."""
    meta = body.get("metadata") or {}
    _about.set(
        {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "namespace": meta.get("namespace"),
        }
    )


class _QuietTimers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and _TIMER_SUCCEEDED.match(str(record.msg)):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class _NameTheObject(logging.Filter):
    """On the handlers: a record made while a handler works on an object, through any
    logger, gets that object's reference unless kopf gave it one."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = _about.get()
        if ref is not None and not hasattr(record, "k8s_ref"):
            record.k8s_ref, record.k8s_skip = ref, True
        return True


_quiet_timers, _name_the_object = _QuietTimers(), _NameTheObject()


def configure(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Idempotent: called before kopf starts and again at its startup (kopf's own CLI,
    used by the tests, configures logging its way first)."""
    level = level.upper()
    kopf.configure(
        debug=level == "DEBUG",
        log_format=kopf.LogFormat.JSON if fmt == "json" else kopf.LogFormat.FULL,
        # The JSON carries the object as a key; text needs the prefix.
        log_prefix=fmt != "json",
    )
    logging.getLogger().setLevel(level)
    objects = logging.getLogger("kopf.objects")
    if _quiet_timers not in objects.filters:
        objects.addFilter(_quiet_timers)
    for handler in logging.getLogger().handlers:
        if _name_the_object not in handler.filters:
            handler.addFilter(_name_the_object)
