"""The suite's leak check: what each cloud double still holds when it is stopped or reset
(live instances, servers or VMs, and key pairs). tests/conftest.py fails the run when a
test left anything, naming the test."""

from __future__ import annotations

import os

LEFT: list[str] = []


def note(double: str, machines: list[str], key_pairs: list[str]) -> None:
    if not machines and not key_pairs:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)").split(" ")[0]
    LEFT.append(
        f"{test}: {double} still holds {len(machines)} machine(s) {machines[:5]} and "
        f"{len(key_pairs)} key pair(s) {key_pairs[:5]}"
    )
