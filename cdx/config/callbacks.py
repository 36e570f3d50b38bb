"""`ValidateSweep`: a sweep's shared settings are validated once, before its first job starts.

In a multirun each job validates its own config (`cdx.run.run`), and a job refused there leaves
`error.json` while the other jobs run: right for a value that only some jobs have (a swept one),
wasteful when every job would be refused. This Hydra callback validates the sweep's base config
(every override except the swept ones) in `on_multirun_start`: a bad shared value ends the sweep
with one line and exit status 2 before any job folder is made. `CDX_DEBUG=1` raises instead.
"""

from __future__ import annotations

import os
import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cdx.config.validate import ConfigError, validate_config

USER_ERROR_EXIT = 2


class ValidateSweep(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)  # ${hydra:...} in the config needs it
        try:
            validate_config(config)
        except ConfigError as e:
            if os.environ.get("CDX_DEBUG", "").strip() not in ("", "0", "false"):
                raise
            from cdx.io.redact import redact

            print(redact(f"cdx: error: {e} (the sweep was not started; CDX_DEBUG=1 shows the traceback)"),
                  file=sys.stderr)
            raise SystemExit(USER_ERROR_EXIT) from None
