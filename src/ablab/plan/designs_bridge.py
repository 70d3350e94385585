"""Turn a study's design into its plan (one-at-a-time for now; factorial designs plug in here)."""

from __future__ import annotations

from ablab.plan.expand import Plan, expand
from ablab.spec.model import StudySpec


def plan_for(spec: StudySpec) -> Plan:
    return expand(spec)
