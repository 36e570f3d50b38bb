# Installed as the package `cdx.conf` (setup.py maps it here), so a wheel carries the config tree;
# `cdx.resources.conf_dir()` finds it in a checkout or an install. Hydra reads only the YAML files.
