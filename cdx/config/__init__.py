"""Typed schemas of the composed Hydra config, and `validate_config(cfg)`, run before any model loads.

    from cdx.config import validate_config
    validate_config(cfg)   # raises ConfigError (a CdxUserError) naming each bad value; returns warnings
"""

from cdx.config.validate import ConfigError, validate_config
from cdx.errors import CdxUserError

__all__ = ["CdxUserError", "ConfigError", "validate_config"]
