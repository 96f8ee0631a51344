"""The whole pipeline in the production profile, through the installed program, against real
servers: Feast's SQL registry in PostgreSQL and its online store in Redis, MLflow tracking and
registry behind `mlflow server` on PostgreSQL, tuning on an Optuna study in PostgreSQL with two
workers, the final fit on a Dask LocalCluster; then the Bento `tradecredit package` builds,
served with its pinned model versions. Nothing may fall back to the workspace's SQLite files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import optuna
import psycopg
import pytest
import redis
import yaml
from mlflow import MlflowClient

from tests.integration.conftest import TRADECREDIT, cli, production_config_dir, production_env, run
from tradecredit.local_servers import PG_USER
from tradecredit.serving.process import RunningServer, admin_key, free_port, wait_ready


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_pipeline_runs_in_the_production_profile(tmp_path, production_servers, monkeypatch):
    # 150 buyers a partition: the 400-buyer book builds as several partitions on the Dask cluster.
    configs = production_config_dir(tmp_path / "configs", trials=4, profile={"features": {"build": {"partition_buyers": 150}}})
    env = production_env(production_servers, configs) | {"BENTOML_HOME": str(tmp_path / "bentoml")}
    ws = tmp_path / "ws"

    def ok(*args: str, timeout: int = 400, in_process: bool = False) -> subprocess.CompletedProcess[str]:
        if in_process:  # the data steps: the same program without a Feast import per step
            with monkeypatch.context() as patched:
                for key, value in env.items():
                    patched.setenv(key, value)
                done = cli("--workspace", str(ws), *args)
        else:
            done = run("--workspace", str(ws), *args, env=env, timeout=timeout)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert "database is locked" not in done.stderr
        return done

    ok("simulate", "--out", str(ws / "simulated"), "--buyers", "400", "--months", "40", in_process=True)
    ok("load", str(ws / "simulated" / "ledger"), "--strict", in_process=True)
    built = ok("features", "build", in_process=True).stdout
    assert "partition(s) of at most" in built and "on Dask (LocalCluster, 2 workers)" in built, built
    build_summary = json.loads((ws / "features" / "build_summary.json").read_text())
    assert build_summary["partitions"]["engine"] == "LocalCluster" and build_summary["partitions"]["count"] == 3
    assert build_summary["partitions"]["rebuilt"] == 3
    ok("features", "apply", in_process=True)
    assert "into the redis online store" in ok("features", "materialize", in_process=True).stdout
    # The two models' chains are independent: run them side by side, as a scheduler would.
    def chain(model: str) -> subprocess.Popen[str]:
        script = " && ".join(
            f"{TRADECREDIT} --workspace {ws} {step}" for step in (f"features training-set {model}", f"train {model}")
        )
        # At 400 buyers a model can tie the logistic benchmark within noise: a refusal is then
        # overridden, as a user would, which the registry on PostgreSQL records like a pass.
        promote = f"{TRADECREDIT} --workspace {ws} promote {model}"
        script += f" && ({promote} || {promote} --override 'production-profile test: a 400-buyer book')"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECREDIT_")} | env
        return subprocess.Popen(["bash", "-c", script], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    chains = {model: chain(model) for model in ("default", "late")}
    summaries = {}
    for model, process in chains.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{model}: {out[-2000:]}\n{err[-3000:]}"
        assert "fitted on Dask (2 workers)" in out and "database is locked" not in err
        summaries[model] = json.loads((ws / "models" / model / "train_summary.json").read_text())

    # Feast: the registry is rows in PostgreSQL, the online features are keys in Redis.
    assert not (ws / "feature_repo" / "registry.db").exists() and not (ws / "feature_repo" / "online_store.db").exists()
    host, port = production_servers.postgres.address.split(":")
    with psycopg.connect(host=host, port=int(port), user=PG_USER, dbname="feast") as con:
        views = {row[0] for row in con.execute("SELECT feature_view_name FROM feature_views WHERE project_id = 'tradecredit'")}
    assert views == {"payment_behaviour", "registry_signals", "firmographics", "financials", "market_conditions"}
    redis_host, redis_port = production_servers.redis.address.split(":")
    # Counted by the project's keys (an entity key followed by the project name), one hash per
    # buyer: the Redis server is shared by the session's production-profile tests.
    project_keys = redis.Redis(host=redis_host, port=int(redis_port)).scan_iter(match=b"*tradecredit", count=1000)
    assert sum(1 for _ in project_keys) == 400

    # MLflow: runs and registry on the server, none in the workspace's SQLite.
    assert not (ws / "mlflow" / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=production_servers.mlflow.address, registry_uri=production_servers.mlflow.address)
    for model, summary in summaries.items():
        assert summary["tracking_uri"] == production_servers.mlflow.address
        assert summary["training_engine"]["engine"] == "dask" and summary["training_engine"]["workers"] == 2
        champion = client.get_model_version_by_alias(summary["registered_model"], "champion")
        assert champion.version == summary["version"]
        assert client.get_run(summary["run_id"]).data.tags["training_engine"] == "dask"
        # Optuna: the study is in PostgreSQL and holds the configured trials, each also an MLflow run.
        study = optuna.load_study(study_name=summary["optuna_study"], storage=production_servers.environment()["TRADECREDIT_OPTUNA_URL"])
        finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        assert len(finished) >= 4
        tuning = client.get_experiment_by_name(f"{summary['registered_model']}-tuning")
        logged = client.search_runs([tuning.experiment_id], filter_string=f"tags.optuna_study = '{summary['optuna_study']}'")
        assert len(logged) == len(finished)

    # The Bento: pinned to the champions, with the profile, configs and locked requirements.
    packaged = ok("package")
    tag = packaged.stdout.split("Built Bento ")[1].split(",")[0]
    name, version = tag.split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    pinned = json.loads((bento / "src" / "pinned_models.json").read_text())
    for model, summary in summaries.items():
        assert pinned[model] == {"registered_model": summary["registered_model"], "version": summary["version"]}
        assert manifest["labels"][f"model_{model}"] == f"{summary['registered_model']}:{summary['version']}"
    bento_env = {e["name"]: e["value"] for e in manifest["envs"]}
    assert bento_env["TRADECREDIT_PROFILE"] == "production"
    shipped = yaml.safe_load((bento / "src" / "configs" / "profiles" / "production.yaml").read_text())
    assert shipped == yaml.safe_load((configs / "profiles" / "production.yaml").read_text()) and shipped
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "lightgbm==4.7.0" in requirements and "bentoml==" in requirements
    [wheel] = (bento / "env" / "python" / "wheels").glob("tradecredit-*.whl")
    with zipfile.ZipFile(wheel) as packed:  # the project's own code, the console's templates too
        assert {"tradecredit/__init__.py", "tradecredit/serving/service.py"} <= set(packed.namelist())
        assert any(n.startswith("tradecredit/serving/console/templates/") for n in packed.namelist())

    # Served as the container would run it (its working folder is the Bento's src): the pinned
    # versions, features from Redis, the registry from the MLflow server.
    serve_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECREDIT_")} | env | {
        key: str(bento / "src" / value) if key in ("TRADECREDIT_CONFIG_DIR", "TRADECREDIT_PINNED_MODELS") else value
        for key, value in bento_env.items()
    } | {"TRADECREDIT_WORKSPACE": str(ws), "TRADECREDIT_SERVE_AS_OF": json.loads((ws / "features" / "build_summary.json").read_text())["as_of_end"]}
    port = free_port()
    log = tmp_path / "bento-serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("bentoml")), "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
            env=serve_env, stdout=out, stderr=subprocess.STDOUT, cwd=bento / "src", start_new_session=True,
        )
    key_id, secret = admin_key(production_servers.environment()["TRADECREDIT_USERS_URL"])
    server = RunningServer(process, f"http://127.0.0.1:{port}", log, secret, key_id)
    try:
        wait_ready(server, 180)
        status, body = server.post("/status", {})
        assert status == 200, body
        assert body["model_versions"] == {s["registered_model"]: s["version"] for s in summaries.values()}
        buyer = "B000001"
        status, answer = server.post("/assess", {"buyer_id": buyer, "order": {"amount": 10000, "terms_days": 60}})
        assert status == 200, answer
        assert answer["buyer_id"] == buyer and 0 < answer["pd_12m"] < 1 and answer["grade"] >= 1
        assert server.post("/status", {})[1]["decisions_logged"] == 1
        # The limit register is the production servers' PostgreSQL database, not a workspace file.
        status, request = server.post("/limits/requests", {"buyer_id": buyer, "seller_id": "S001", "amount": 1000, "terms_days": 30})
        assert status == 201, request
        pg_host, pg_port = production_servers.postgres.address.split(":")
        with psycopg.connect(host=pg_host, port=int(pg_port), user=PG_USER, dbname="credit") as con:
            assert con.execute("SELECT count(*) FROM limit_requests WHERE request_id = %s", (request["request_id"],)).fetchone()[0] == 1
        # So are the decision log and the console users store with its API keys.
        with psycopg.connect(host=pg_host, port=int(pg_port), user=PG_USER, dbname="decisions") as con:
            assert con.execute("SELECT buyer_id, api_key_id FROM decisions WHERE decision_id = %s", (answer["decision_id"],)).fetchone() == (buyer, key_id)
        with psycopg.connect(host=pg_host, port=int(pg_port), user=PG_USER, dbname="console") as con:
            assert con.execute("SELECT admin FROM api_keys WHERE key_id = %s", (key_id,)).fetchone() == (1,)
        assert not any((ws / path).exists() for path in ("credit/register.db", "serving/decisions.db", "console/users.db"))
    finally:
        server.stop()
