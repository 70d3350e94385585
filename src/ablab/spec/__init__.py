"""Study specifications: parse and validate study files into frozen dataclasses."""

from ablab.spec.load import load_study, parse_duration, parse_study
from ablab.spec.model import BASELINE, DesignSpec, MetricSpec, RunOptions, StudySpec

__all__ = [
    "BASELINE",
    "DesignSpec",
    "MetricSpec",
    "RunOptions",
    "StudySpec",
    "load_study",
    "parse_duration",
    "parse_study",
]
