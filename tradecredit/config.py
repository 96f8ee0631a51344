"""The one typed configuration tree, loaded from ``configs/*.yaml``.

Each YAML file is one section of :class:`PlatformConfig` (``simulator.yaml`` ->
``PlatformConfig.simulator``). Unknown keys and unknown files are rejected, so a
misspelt key fails at load with the file and the key named. Models carry no
defaults for tunable numbers: the YAML files are the single place they live.

Each stage owns the models of its sections (``tradecredit/simulator_config.py``,
``tradecredit/ledger_config.py``, ``tradecredit/policy_config.py``,
``tradecredit/backends_config.py``, ``features/config.py``, ``training/config.py``,
``serving/config.py``, ``monitoring/config.py``), built on ``tradecredit/config_base.py``.
This module holds the loader and :class:`PlatformConfig`, and imports nothing of the project
but those modules; import a section's models from the module that owns them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from tradecredit.backends_config import BackendsConfig
from tradecredit.config_base import ConfigError, StrictModel
from tradecredit.credit.config import CreditConfig
from tradecredit.features.config import FeaturesConfig, LabelsConfig
from tradecredit.ledger_config import LedgerConfig
from tradecredit.monitoring.config import MonitoringConfig
from tradecredit.policy_config import PolicyConfig
from tradecredit.serving.config import ConsoleConfig, ServingConfig
from tradecredit.simulator_config import SimulatorConfig
from tradecredit.training.config import TrainingConfig

CONFIG_DIR_ENV = "TRADECREDIT_CONFIG_DIR"
# A profile overrides keys of the section files: configs/profiles/<name>.yaml.
PROFILE_ENV = "TRADECREDIT_PROFILE"
PROFILES_DIR = "profiles"
EMBEDDED_PROFILE = "embedded"

M = TypeVar("M", bound=StrictModel)


# --------------------------------------------------------------------------- the tree


class PlatformConfig(StrictModel):
    simulator: SimulatorConfig
    ledger: LedgerConfig
    labels: LabelsConfig
    features: FeaturesConfig
    policy: PolicyConfig
    credit: CreditConfig
    training: TrainingConfig
    serving: ServingConfig
    monitoring: MonitoringConfig
    console: ConsoleConfig
    backends: BackendsConfig


SECTIONS: dict[str, type[StrictModel]] = {
    name: field.annotation for name, field in PlatformConfig.model_fields.items()  # type: ignore[misc]
}


def default_config_dir() -> Path:
    """``$TRADECREDIT_CONFIG_DIR`` if set, else ``./configs`` if it exists, else the shipped ``configs/``."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env)
    local = Path.cwd() / "configs"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / "configs"


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def selected_profile(profile: str | None = None) -> str:
    """The profile asked for, else ``$TRADECREDIT_PROFILE``, else ``embedded``."""
    return profile or os.environ.get(PROFILE_ENV) or EMBEDDED_PROFILE


def load_config(config_dir: Path | None = None, profile: str | None = None) -> PlatformConfig:
    """Load and validate every section file in ``config_dir``, with the profile's overrides
    (``configs/profiles/<profile>.yaml``) merged over them."""
    config_dir = config_dir or default_config_dir()
    if not config_dir.is_dir():
        raise ConfigError(f"config folder {config_dir} does not exist (set {CONFIG_DIR_ENV} or pass --config-dir)")
    present = {p.stem: p for p in sorted(config_dir.glob("*.y*ml"))}
    unknown = set(present) - set(SECTIONS)
    if unknown:
        names = ", ".join(present[u].name for u in sorted(unknown))
        raise ConfigError(f"{config_dir}: unknown config file(s) {names}; known sections: {', '.join(SECTIONS)}")
    overrides = profile_overrides(config_dir, selected_profile(profile))
    sections: dict[str, StrictModel] = {}
    for name, model in SECTIONS.items():
        path = present.get(name)
        if path is None:
            raise ConfigError(f"{config_dir}: missing config file {name}.yaml")
        sections[name] = load_section(path, model, overrides.get(name))
    return PlatformConfig(**sections)


def load_profiled_section(model: type[M], config_dir: Path | None = None, profile: str | None = None) -> M:
    """One section file with the selected profile's overrides for it: what load_config gives
    for that section, for readers that need one section before the rest (the service's
    decorator reads serving.yaml and console.yaml when `bentoml serve` imports it)."""
    config_dir = config_dir or default_config_dir()
    name = next(section for section, section_model in SECTIONS.items() if section_model is model)
    overrides = profile_overrides(config_dir, selected_profile(profile)).get(name)
    return load_section(config_dir / f"{name}.yaml", model, overrides)


def profile_overrides(config_dir: Path, profile: str) -> dict[str, dict[str, Any]]:
    """The profile file's sections, ``${VAR}`` and ``${VAR:-default}`` expanded from the
    environment (addresses and passwords stay out of the file). The embedded profile is the
    section files themselves."""
    if profile == EMBEDDED_PROFILE:
        return {}
    path = config_dir / PROFILES_DIR / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (config_dir / PROFILES_DIR).glob("*.yaml"))
        raise ConfigError(f"no profile '{profile}' ({path} does not exist); profiles: {', '.join([EMBEDDED_PROFILE, *known])}")
    raw = _read_yaml(path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; known sections: {', '.join(SECTIONS)}")
    bad = [k for k, v in raw.items() if not isinstance(v, dict)]
    if bad:
        raise ConfigError(f"{path}: section(s) {', '.join(bad)} must be mappings of keys")
    try:
        return {name: _expand(values, name) for name, values in raw.items()}
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


_ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found:
            return found
        if default is None:
            raise ConfigError(f"key '{where}' needs ${name}: set it (or give a default as ${{{name}:-value}})")
        return default

    expanded = _ENV_REFERENCE.sub(substitute, value)
    # "${VAR:-}" with VAR unset means "not set", as null does in the section files.
    return None if expanded == "" and value else expanded


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return raw


def load_section(path: Path, model: type[M], overrides: dict[str, Any] | None = None) -> M:
    """Validate one YAML file, with a profile's overrides merged in, against ``model``;
    errors name the file and the key."""
    raw = _read_yaml(path)
    source = f"{path}" if not overrides else f"{path} (with the profile's {path.stem} overrides)"
    try:
        return model.model_validate(_merge(raw, overrides or {}))
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the key, never echoing the input."""
    problems = []
    for err in exc.errors():
        key = _location(err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}'")
        else:
            message = err["msg"].removeprefix("Value error, ")
            problems.append(message if key == "(top level)" else f"key '{key}': {message}")
    return "; ".join(problems)
