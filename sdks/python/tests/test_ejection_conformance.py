"""The Python runner of the outlier-ejection scenarios (testdata/conformance/ejection/*.json).

Each drives an OutlierEjector with a fake clock; the schema is in
testdata/conformance/README.md. The TypeScript and Go runners read the same
files and must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from maxine.outlier_ejector import EjectionEvent, EjectionOptions, OutlierEjector

DIR = Path(__file__).resolve().parents[3] / "testdata" / "conformance" / "ejection"
FILES = sorted(DIR.glob("*.json"))

# scenario key -> (EjectionOptions field, divisor: ms to seconds)
CONFIG_KEYS: dict[str, tuple[str, int]] = {
    "consecutive_failures": ("consecutive_failures", 1),
    "interval_ms": ("interval", 1000),
    "base_ejection_time_ms": ("base_ejection_time", 1000),
    "max_ejection_time_ms": ("max_ejection_time", 1000),
    "max_ejection_percent": ("max_ejection_percent", 1),
    "failure_percentage_threshold": ("failure_percentage_threshold", 1),
    "failure_percentage_minimum_hosts": ("failure_percentage_minimum_hosts", 1),
    "failure_percentage_request_volume": ("failure_percentage_request_volume", 1),
}

FIELDS: dict[str, tuple[str, ...]] = {
    "report": ("instance", "outcome", "times"),
    "pick": ("instance",),
    "set_instances": ("instances",),
    "expect_picks": ("instances",),
    "expect_events": ("events",),
    "expect_counters": ("ejected_total", "restored_total", "ejected"),
}


def as_json(e: EjectionEvent) -> dict[str, Any]:
    if not e.ejected:
        return {"type": "restored", "instance": e.instance_id, "at_ms": e.at_ms}
    return {
        "type": "ejected",
        "instance": e.instance_id,
        "reason": e.reason,
        "ejections": e.ejections,
        "duration_ms": e.duration_ms,
        "at_ms": e.at_ms,
    }


def options_of(config: dict[str, int]) -> EjectionOptions:
    kwargs: dict[str, Any] = {}
    for k, v in config.items():
        if k not in CONFIG_KEYS:
            raise AssertionError(f"unknown config key {k}")
        field, div = CONFIG_KEYS[k]
        kwargs[field] = v / div if div != 1 else v
    return EjectionOptions(**kwargs)


def test_has_scenarios() -> None:
    assert len(FILES) >= 9


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_ejection_conformance(path: Path) -> None:
    sc = json.loads(path.read_text())
    assert sc["name"] == path.stem
    now = 0
    events: list[EjectionEvent] = []
    ejector = OutlierEjector(options_of(sc.get("config", {})), "svc", lambda: now, events.append)
    members = list(sc["instances"])
    ejector.retain(members)
    seen = 0
    for i, step in enumerate(sc["steps"]):
        where = f"{sc['name']}: step {i} ({step['do']} at {step['at_ms']} ms)"
        known = FIELDS.get(step["do"])
        assert known is not None, f"{where}: unknown step kind"
        for f in step:
            assert f in ("do", "at_ms") or f in known, f"{where}: unknown field {f}"
        assert step["at_ms"] >= now, f"{where}: at_ms goes back"
        now = step["at_ms"]
        do = step["do"]
        if do == "report":
            assert step["outcome"] in ("success", "failure"), f"{where}: outcome must be success or failure"
            for _ in range(step.get("times", 1)):
                ejector.report(step["instance"], step["outcome"] == "success")
        elif do == "pick":
            assert step["instance"] in ejector.allowed(members), where
            ejector.picked(step["instance"])
        elif do == "set_instances":
            members = list(step["instances"])
            ejector.retain(members)
        elif do == "expect_picks":
            assert list(ejector.allowed(members)) == step["instances"], where
        elif do == "expect_events":
            assert [as_json(e) for e in events[seen:]] == step["events"], where
            seen = len(events)
        elif do == "expect_counters":
            c = ejector.counters()
            got = {"ejected_total": c.ejected_total, "restored_total": c.restored_total, "ejected": c.ejected}
            want = {k: step[k] for k in ("ejected_total", "restored_total", "ejected")}
            assert got == want, where
