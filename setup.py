"""Packages of the wheel; everything else about the build is in setup.cfg.

`conf/` stays at the top of the repository and ships inside the package as `cdx.conf` (each
config group a data-only subpackage), so an installed cdx composes the same configs as a checkout
(`cdx.resources.conf_dir`). The data folders (prompts, instructions, report templates) are
namespace packages of package data.
"""

from setuptools import find_namespace_packages, setup

NO_CACHE = ["__pycache__", "*.__pycache__"]
conf = ["cdx.conf"] + [f"cdx.conf.{g}" for g in find_namespace_packages(where="conf", exclude=NO_CACHE)]
packages = find_namespace_packages(include=["cdx", "cdx.*"], exclude=NO_CACHE)
# Each data folder is its own (namespace) package, so its files are named here, per package: a glob
# on `cdx` (data/**/*) no longer reached them with current setuptools, and the wheel shipped no prompts.
data = [p for p in packages if p.startswith(("cdx.data.", "cdx.tracking.templates"))]
setup(
    packages=packages + conf,
    package_dir={"cdx.conf": "conf"},
    package_data={**{p: ["*.yaml"] for p in conf}, **{p: ["*.txt", "*.yaml", "*.j2"] for p in data}},
)
