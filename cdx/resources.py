"""Where cdx's config tree lives: the checkout's `conf/`, or the copy an installed wheel carries.

In a source checkout the configs stay at the top of the repository (`conf/`, beside `setup.cfg`),
so a checkout always uses its own, also one imported without being installed. An installed
package (`pip install cdx`) carries the same files as the package `cdx.conf` (setup.py maps it to
`conf/` at build time). Users add their own groups with Hydra's `--config-dir` or
`hydra.searchpath`, over either.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path


@cache
def conf_dir() -> Path:
    """The directory holding `config.yaml` and the config groups."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "setup.cfg").is_file() and (checkout / "conf" / "config.yaml").is_file():
        return checkout / "conf"
    installed = Path(str(resources.files("cdx.conf")))
    if not (installed / "config.yaml").is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"cdx's configs are missing: no config.yaml in {installed}; reinstall cdx")
    return installed
