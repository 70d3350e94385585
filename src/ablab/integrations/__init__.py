"""Bridges to other tools, one module each, imported only when used (their packages are
optional extras): ``hydra`` (config trees and override lists in study files), ``lightning``
(``AblabLogger``), ``transformers`` (``AblabCallback``). Nothing else in ablab imports them."""
