"""The main job end to end on the built-in simulated portfolio: every stage in order, each
through the same pipeline function its command calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tradecredit import pipeline as ledger_stages
from tradecredit.config import PlatformConfig
from tradecredit.errors import StageError
from tradecredit.features import pipeline as feature_stages
from tradecredit.insurance import pipeline as insurance_stages
from tradecredit.model_specs import MODELS
from tradecredit.monitoring import pipeline as monitoring_stages
from tradecredit.serving import pipeline as serving_stages
from tradecredit.training import pipeline as training_stages
from tradecredit.workspace import Workspace


DEMO_OVERRIDE = "the demo goes on with the challenger it trained; the gate's refusal is printed above and kept on the version"


def run_demo(
    cfg: PlatformConfig, ws: Workspace, config_dir: Path, echo: Callable[[str], None], err: Callable[[str], None],
    buyers: int | None = None, months: int | None = None,
) -> Path:
    """Simulate, load, build features, fill Feast, train, evaluate and promote both models, serve,
    monitor and open the console; ``echo`` prints a line, ``err`` a warning. The last
    monitoring report."""
    from tradecredit.training.registry import tracking_uri

    echo(f"Workspace: {ws.root}")
    sim_cfg = ledger_stages.simulator_config(cfg.simulator, buyers=buyers, months=months)
    echo("\n== 1. Simulate a portfolio")
    simulated = ledger_stages.simulate(sim_cfg, ws.simulated)
    echo(simulated.describe())
    echo("\n== 2. Load the ledger")
    loaded = ledger_stages.load(cfg, simulated.paths.ledger_dir, ws)
    echo(loaded.describe())
    if loaded.summary.rows_rejected:
        raise StageError(f"the simulated ledger had {loaded.summary.rows_rejected} rejected rows: a simulator or loader bug")
    echo("\n== 3. Build point-in-time features")
    echo(feature_stages.build(cfg, ws).describe())
    echo("\n== 4. Register them in Feast and load the online store")
    echo(feature_stages.apply(cfg, ws).describe())
    echo(feature_stages.materialize(cfg, ws).describe())
    echo("\n== 5. Training sets (Feast point-in-time retrieval + contract labels)")
    for name in MODELS:
        echo(feature_stages.training_set(cfg, ws, name).describe())
    echo("\n== 6. Train, evaluate and promote both models (Optuna + LightGBM, MLflow registry)")
    for name in MODELS:
        trained = training_stages.train(cfg, ws, name, config_dir=config_dir)
        for warning in trained.warnings:
            err(warning)
        echo(trained.describe())
        echo(training_stages.evaluate(cfg, ws, name).describe())
        promoted = training_stages.promote(cfg, ws, name)
        (echo if promoted.promoted else err)(promoted.describe())
        if not promoted.promoted:
            # The demo never stops on a refusal: it says so and goes on with the model it has,
            # and the override is recorded on the version like a user's.
            if not promoted.decision.refused_by_noise_only:
                err(f"The {name} model failed a check of the model itself ({', '.join(promoted.decision.failed_checks)}): "
                    "a defect to fix before real use; the demo goes on with it.")
            echo(training_stages.promote(cfg, ws, name, override=DEMO_OVERRIDE).describe())
    echo(f"MLflow runs, model cards and plots: mlflow ui --backend-store-uri {tracking_uri(ws, cfg.backends)}")
    echo("\n== 7. Start the scoring service (BentoML) and assess a few buyers over HTTP")
    serving_stages.demo_service(cfg, ws, config_dir, echo)
    echo("\n== 8. Monitor the portfolio: drift, early warnings, backtests, the portfolio view and its report")
    monitoring_stages.reset_monitoring(ws)
    dates = monitoring_stages.demo_dates(ws.built_as_of())
    for day in dates:
        echo(f"-- monitor --as-of {day}")
        for line, to_stderr in monitoring_stages.monitor(cfg, ws, day).describe():
            (err if to_stderr else echo)(line)
    report = ws.monitoring_run(dates[-1]).report
    echo(f"\nMonitoring report (open it in a browser): {report}")
    echo("\n== 9. Insure: the largest seller's policy quote, and the pricing backtest")
    for line in insurance_stages.demo_insurance(cfg, ws):
        echo(line)
    echo("\n== 10. The risk reviewer console: log in and read the portfolio over HTTP")
    serving_stages.demo_console(cfg, ws, config_dir, echo)
    echo("\nDemo complete.")
    return report
