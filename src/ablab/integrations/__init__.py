"""Bridges to other tools (trackers, frameworks, config systems), one module each. Their
packages are optional extras, imported lazily (inside the functions that need them, or when the
module itself is imported), so ``import ablab`` works without any of them: ``mlflow``/``wandb``
(``ablab sync``), ``hydra`` (config trees and override lists in study files), ``lightning``
(``AblabLogger``), ``transformers`` (``AblabCallback``)."""
