"""Which packages install, found by setuptools (everything else is in pyproject.toml).

bertnp/ and its subpackages install as they are; the kernels/ folder installs as bertnp.kernels (with
any subpackage it grows), never as a top-level `kernels` that could collide with another distribution's.
"""

from setuptools import find_packages, setup

kernels = ["bertnp." + name for name in find_packages(include=["kernels", "kernels.*"])]
setup(packages=find_packages(include=["bertnp", "bertnp.*"]) + kernels, package_dir={"bertnp.kernels": "kernels"})
