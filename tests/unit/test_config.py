"""The typed config tree: loads the shipped configs, rejects what it does not know."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tradecredit.config import load_config, load_profiled_section
from tradecredit.config_base import ConfigError
from tradecredit.serving.config import ConsoleConfig, ServingConfig
from tradecredit.model_specs import MODELS as MODEL_NAMES
from tradecredit.model_specs import UnknownModel as UnknownModelError


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(REPO / "configs", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_shipped_configs_load(config):
    assert config.simulator.buyers > 0
    assert config.ledger.financials_publication_lag_days >= 0


def test_misspelt_key_names_file_and_key(config_copy):
    _edit(config_copy / "simulator.yaml", "\nsellers: ", "\nsellerz: ")
    with pytest.raises(ConfigError) as err:
        load_config(config_copy)
    assert "simulator.yaml" in str(err.value) and "unknown key 'sellerz'" in str(err.value)


def test_nested_misspelt_key_is_named_with_its_path(config_copy):
    _edit(config_copy / "simulator.yaml", "  habit_sd:", "  habbit_sd:")
    with pytest.raises(ConfigError, match=r"unknown key 'payments\.habbit_sd'"):
        load_config(config_copy)


def test_wrong_value_names_the_key(config_copy):
    _edit(config_copy / "ledger.yaml", "financials_publication_lag_days: 120", "financials_publication_lag_days: -3")
    with pytest.raises(ConfigError, match=r"ledger\.yaml: key 'financials_publication_lag_days'"):
        load_config(config_copy)


def test_shares_must_sum_to_one(config_copy):
    _edit(config_copy / "simulator.yaml", "DE: 0.25, FR", "DE: 0.35, FR")
    with pytest.raises(ConfigError, match="population.countries shares must sum to 1"):
        load_config(config_copy)


def test_unknown_registry_event_type_is_refused(config_copy):
    _edit(config_copy / "simulator.yaml", "  name_change:", "  name_changed:")
    with pytest.raises(ConfigError, match="name_changed"):
        load_config(config_copy)


def test_unknown_config_file_is_refused(config_copy):
    (config_copy / "extra.yaml").write_text("a: 1\n")
    with pytest.raises(ConfigError, match="unknown config file.*extra.yaml"):
        load_config(config_copy)


def test_missing_config_file_is_named(config_copy):
    (config_copy / "ledger.yaml").unlink()
    with pytest.raises(ConfigError, match="missing config file ledger.yaml"):
        load_config(config_copy)


def test_invalid_yaml_is_reported(config_copy):
    (config_copy / "ledger.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(config_copy)


def test_training_config_refuses_what_it_cannot_train(config_copy):
    training = config_copy / "training.yaml"
    original = training.read_text()
    cases = {
        "    gap_days: 365\n": ("    gap_days: 200\n", "gap_days \\(200\\) must be at least label_horizon_days"),
        "    late_share_90d: 1\n": ("    late_share_9d: 1\n", "features the default model does not use: late_share_9d"),
        "learning_rate: 0.03, min_child_samples: 300": ("learning_rate: 0.5, min_child_samples: 300", "first_trial is outside the search space for learning_rate"),
    }
    for old, (new, message) in cases.items():
        training.write_text(original)
        _edit(training, old, new)
        with pytest.raises(ConfigError, match=message):
            load_config(config_copy)


def test_an_unknown_model_name_is_refused_with_the_choices(config):
    for name in MODEL_NAMES:
        assert config.training.model(name) is getattr(config.training, name)
    for name in ("Default", "lat", ""):
        with pytest.raises(UnknownModelError, match=r"unknown model '.*': choose default, late"):
            config.training.model(name)
    assert issubclass(UnknownModelError, ValueError)


def test_master_scale_must_rise(config_copy):
    _edit(config_copy / "policy.yaml", "{grade: 2, max_pd: 0.003", "{grade: 2, max_pd: 0.001")
    with pytest.raises(ConfigError, match="max_pd must rise strictly"):
        load_config(config_copy)


def test_policy_refuses_a_limit_share_that_rises_with_risk(config_copy):
    _edit(config_copy / "policy.yaml", "grade_share: [1.0, 1.0, 0.9", "grade_share: [1.0, 0.8, 0.9")
    with pytest.raises(ConfigError, match="never rising as grades worsen"):
        load_config(config_copy)


# --------------------------------------------------------------------------- profiles


def _profile_dir(tmp_path, text: str):
    import shutil

    folder = tmp_path / "configs"
    shutil.copytree(REPO / "configs", folder)
    (folder / "profiles" / "test.yaml").write_text(text, encoding="utf-8")
    return folder


def test_the_embedded_profile_is_the_default_and_needs_no_server(monkeypatch):
    monkeypatch.delenv("TRADECREDIT_PROFILE", raising=False)
    cfg = load_config(REPO / "configs")
    assert cfg.backends.mlflow_tracking_uri is None and cfg.backends.feast_registry is None
    assert cfg.backends.tuning.url is None and cfg.backends.training_engine == "local" and cfg.features.online_store == "sqlite"


def test_the_production_profile_overrides_keys_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRADECREDIT_PROFILE", "production")
    monkeypatch.setenv("TRADECREDIT_MLFLOW_URL", "http://10.0.0.5:5000")
    monkeypatch.delenv("TRADECREDIT_REDIS_URL", raising=False)
    monkeypatch.delenv("TRADECREDIT_DASK_SCHEDULER", raising=False)
    cfg = load_config(REPO / "configs")
    assert cfg.backends.mlflow_tracking_uri == "http://10.0.0.5:5000"  # from the environment
    assert cfg.backends.redis_address == "127.0.0.1:6379"  # the file's default
    assert cfg.backends.dask.scheduler is None  # ${VAR:-} unset means null
    assert cfg.features.online_store == "redis" and cfg.backends.training_engine == "dask"
    assert cfg.backends.tuning.workers == 2 and cfg.backends.tuning.url.startswith("postgresql+psycopg://")
    # Keys the profile does not name keep the section file's value.
    assert cfg.backends.tuning.heartbeat_seconds == load_config(REPO / "configs", "embedded").backends.tuning.heartbeat_seconds


def test_profile_errors_name_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    with pytest.raises(ConfigError, match="no profile 'nope'.*profiles: embedded, production"):
        load_config(REPO / "configs", "nope")
    with pytest.raises(ConfigError, match=r"test.yaml: key 'backends.feast_registry' needs \$NO_SUCH_VARIABLE"):
        load_config(_profile_dir(tmp_path / "a", "backends:\n  feast_registry: ${NO_SUCH_VARIABLE}\n"), "test")
    with pytest.raises(ConfigError, match="unknown section.*bakends"):
        load_config(_profile_dir(tmp_path / "b", "bakends:\n  redis_address: x\n"), "test")
    with pytest.raises(ConfigError, match="backends.yaml \\(with the profile's backends overrides\\).*unknown key 'tuning.wrokers'"):
        load_config(_profile_dir(tmp_path / "c", "backends:\n  tuning:\n    wrokers: 3\n"), "test")
    with pytest.raises(ConfigError, match="tuning.workers above 1 needs a shared tuning.url"):
        load_config(_profile_dir(tmp_path / "d", "backends:\n  tuning:\n    workers: 3\n"), "test")


def test_a_section_read_alone_gets_its_profile_keys(tmp_path, monkeypatch):
    # The service's decorator reads serving.yaml and console.yaml before the rest of the config:
    # a profile's keys for them must apply there too.
    configs = _profile_dir(tmp_path / "p", "serving:\n  workers: 7\nconsole:\n  path: /review\n")
    monkeypatch.setenv("TRADECREDIT_PROFILE", "test")
    assert load_profiled_section(ServingConfig, configs).workers == 7 == load_config(configs).serving.workers
    assert load_profiled_section(ConsoleConfig, configs).path == "/review"
    assert load_profiled_section(ServingConfig, configs, "embedded").workers == load_config(configs, "embedded").serving.workers != 7


# --------------------------------------------------------------------------- module layering

# The stage config modules: tradecredit/<name>_config.py, or <package>/config.py of a stage.
STAGE_CONFIG = re.compile(r"^tradecredit\.(?:[a-z_]+_config|(?:features|training|credit|serving|monitoring)\.config)$")
# A config module may import its own package's modules and upstream ones, never downstream.
LAYER = {"features": 1, "training": 2, "credit": 3, "serving": 4, "monitoring": 4}


def _project_imports(module: str) -> set[str]:
    """Every tradecredit module ``module`` imports, at module level or inside a function."""
    origin = importlib.util.find_spec(module).origin
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            found.add(node.module or "")
    return {name for name in found if name == "tradecredit" or name.startswith("tradecredit.")}


def _stage_config_modules() -> list[str]:
    return sorted(m for m in _project_imports("tradecredit.config") if STAGE_CONFIG.match(m))


def _package(module: str) -> str:
    """The stage package of a module (``tradecredit.serving`` and its modules: serving), else the core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYER else "tradecredit"


def test_config_imports_only_the_config_modules():
    assert _project_imports("tradecredit.config_base") == set()
    stray = sorted(m for m in _project_imports("tradecredit.config") if m != "tradecredit.config_base" and not STAGE_CONFIG.match(m))
    assert not stray, f"tradecredit/config.py imports {stray}: it may import only config_base and the stage config modules"
    assert len(_stage_config_modules()) >= 8


def test_stage_config_modules_import_no_downstream_package_and_not_the_tree():
    for module in _stage_config_modules():
        layer = LAYER.get(_package(module), 0)
        for imported in _project_imports(module):
            assert imported != "tradecredit.config", f"{module} imports tradecredit.config (a cycle): use tradecredit.config_base"
            package = _package(imported)
            allowed = package == _package(module) or LAYER.get(package, 0) < layer
            assert allowed, f"{module} imports {imported}, which is not upstream of it"
