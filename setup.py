"""Package layout that pyproject.toml cannot state: the top-level ``experiments/`` folder (the one
source of the shipped configs) becomes the data package ``affect.experiments`` at build time.

(Package data is set here only: a ``[tool.setuptools.package-data]`` table in pyproject.toml would
replace this ``package_data``.)"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

EXPERIMENTS = Path(__file__).resolve().parent / "experiments"
#: experiments/ and each folder under it, as the packages affect.experiments[.<folder>...]
DATA_PACKAGES = ["affect.experiments"] + sorted(
    "affect.experiments." + ".".join(d.relative_to(EXPERIMENTS).parts)
    for d in EXPERIMENTS.rglob("*")
    if d.is_dir() and d.name != "__pycache__"
)
PACKAGE_DATA = {
    "affect": ["**/*.json", "**/*.yaml", "**/*.csv", "models/default/*.pt"],
    **{name: ["*.yaml", "*.md", "*.sbatch"] for name in DATA_PACKAGES},
}

setup(
    packages=[*find_namespace_packages(include=["affect", "affect.*"]), *DATA_PACKAGES],
    package_dir={"affect.experiments": "experiments"},
    package_data=PACKAGE_DATA,
)
