"""The shipped experiment configs, by name or by path, in a checkout and in an installed wheel.

The configs live in the checkout's top-level ``experiments/`` folder (the one source of those
files); the wheel carries the same files as ``affect/experiments`` (``pyproject.toml`` maps the
folder into the package at build time). :func:`experiments_root` finds whichever is there.

``affect fit --config table6/fbn_du2014`` (``.yaml`` optional, a leading ``experiments/`` too, so
the commands written at the top of each config run from any folder) resolves to the shipped file
when no such path exists locally: :func:`resolve_config_args` rewrites the ``--config`` / ``-c``
values of a command line before LightningCLI reads them. A value that names neither a file nor a
shipped config is a one-line error listing the closest names.

>>> Path(resolve_config("table6/fbn_du2014")).relative_to(experiments_root()).as_posix()
'table6/fbn_du2014.yaml'
>>> resolve_config("table6/fbn_du2041")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
affect.errors.ConfigError: --config 'table6/fbn_du2041': no such file, and no shipped config of that name; ...
"""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path

from affect.errors import ConfigError

__all__ = ["config_names", "config_path", "experiments_root", "resolve_config", "resolve_config_args"]

#: The options whose values are config files.
CONFIG_OPTIONS = ("--config", "-c")
#: A value that can only be a name or a path (inline YAML / JSON has ``:``, ``{``, spaces or newlines).
_NAME = re.compile(r"^[\w.\-/]+$")
_SUFFIXES = (".yaml", ".yml")


def experiments_root() -> Path:
    """The folder of the shipped configs: ``affect/experiments`` in an installed package, else the
    checkout's top-level ``experiments/`` (a source checkout or an editable install)."""
    packaged = resources.files("affect") / "experiments"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(str(resources.files("affect"))).parent / "experiments"
    if checkout.is_dir():
        return checkout
    raise ConfigError(
        "the shipped configs are missing: neither affect/experiments (an installed wheel) nor a checkout's "
        "experiments/ folder exists; reinstall affect (pip install affect / pip install .)"
    )


def config_names() -> list[str]:
    """Every shipped config, as its name: its path under :func:`experiments_root` without ``.yaml``."""
    root = experiments_root()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def config_path(name: str) -> Path:
    """The shipped config called ``name`` (``predict/media``, ``table6/fbn_du2014.yaml``,
    ``experiments/demo/facebehaviornet.yaml``); :class:`ConfigError` with the closest names if none."""
    key = _strip(name)
    path = experiments_root() / f"{key}.yaml"
    if key and path.is_file():
        return path
    close = difflib.get_close_matches(key, config_names(), n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "affect fit --config <name> takes e.g. table6/fbn_du2014"
    raise ConfigError(
        f"--config {name!r}: no such file, and no shipped config of that name; {hint} "
        f"(all names: the .yaml files under {experiments_root()})"
    )


def resolve_config(value: str) -> str:
    """``value`` itself when it is an existing file (or not a name: inline YAML), else the shipped
    config of that name (:func:`config_path`)."""
    if Path(value).expanduser().exists() or not _NAME.match(value):
        return value
    return str(config_path(value))


def resolve_config_args(args: list[str]) -> list[str]:
    """``args`` with each ``--config`` / ``-c`` value (``--config X``, ``--config=X``) resolved by
    :func:`resolve_config`."""
    out = list(args)
    for i, a in enumerate(out):
        if a in CONFIG_OPTIONS and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
        else:
            option, eq, value = a.partition("=")
            if eq and option in CONFIG_OPTIONS and value:
                out[i] = f"{option}={resolve_config(value)}"
    return out


def _strip(name: str) -> str:
    key = name.strip().removeprefix("./").removeprefix("experiments/")
    for suffix in _SUFFIXES:
        key = key.removesuffix(suffix)
    return key
