"""Bridges to other tools (trackers, frameworks, config systems), one module each. Their
packages are optional extras, imported lazily inside the functions that need them, so
``import ablab`` works without any of them."""
