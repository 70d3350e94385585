"""Plans: the runs a study needs (designs expand into RunSpecs)."""

from ablab.plan.expand import Plan, RunSpec, canonical_json, expand, run_key, variant_configs

__all__ = ["Plan", "RunSpec", "canonical_json", "expand", "run_key", "variant_configs"]
