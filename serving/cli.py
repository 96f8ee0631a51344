"""``tradecredit serve``: the scoring service, and the demo's look at it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from tradecredit.cli_support import config_of, fail
from tradecredit.config import PlatformConfig
from tradecredit.workspace import Workspace

DEMO_REQUESTS: list[dict[str, Any]] = [
    {"order": {"amount": 25000, "terms_days": 60}, "requested_limit": 100000},
    {"order": {"amount": 5000, "terms_days": 30}},
    {},
]


def check_servable(cfg: PlatformConfig, ws: Workspace, as_of: str | None) -> None:
    """Fail with a message before starting BentoML when the service could not start."""
    from tradecredit.serving.engine import champion_versions
    from tradecredit.serving.process import AS_OF_ENV, parse_as_of
    from tradecredit.training.registry import RegistryError, connect

    try:
        parse_as_of(as_of)
    except ValueError as exc:
        raise fail(str(exc).replace(AS_OF_ENV, "--as-of")) from None
    if not cfg.backends.feast_registry and not (ws.feature_repo / "registry.db").exists():
        raise fail(f"no feature store in {ws.root}: run `tradecredit features apply` and `features materialize` first")
    try:
        champion_versions(connect(ws, cfg.backends), cfg)
    except RegistryError as exc:
        raise fail(str(exc)) from None


# Where the checkout keeps the pinned uv that `make install` puts there.
REPO_ROOT = Path(__file__).resolve().parent.parent
BENTOFILE = Path(__file__).with_name("bentofile.yaml")


def _uv() -> str:
    found = shutil.which("uv") or (str(REPO_ROOT / ".tools" / "bin" / "uv") if (REPO_ROOT / ".tools" / "bin" / "uv").exists() else None)
    if not found or not (REPO_ROOT / "uv.lock").exists():
        raise fail(f"packaging needs the project checkout with its uv.lock and uv (run `make install` in {REPO_ROOT})")
    return found


def run_package(cfg: PlatformConfig, ws: Workspace, config_dir: Path) -> dict[str, Any]:
    """Build a Bento of the scoring service pinned to today's champion versions: the project's
    wheel, the lock's runtime requirements, the configs and pinned_models.json, assembled in
    WORKSPACE/bento/build and built by `bentoml build` into BentoML's store."""
    from tradecredit.serving.engine import champion_versions
    from tradecredit.training.registry import RegistryError, connect

    try:
        versions = champion_versions(connect(ws, cfg.backends), cfg)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    uv = _uv()
    build = ws.root / "bento" / "build"
    shutil.rmtree(build, ignore_errors=True)
    (build / "wheels").mkdir(parents=True)
    shutil.copytree(config_dir, build / "configs")
    pinned = {name: {"registered_model": registered, "version": version} for name, (registered, version) in versions.items()}
    (build / "pinned_models.json").write_text(json.dumps(pinned, indent=2) + "\n", encoding="utf-8")
    steps = [
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header", "--quiet",
         "--project", str(REPO_ROOT), "--output-file", str(build / "requirements.txt")],
        # Without --wheel, uv builds the sdist and the wheel from it in a temporary folder:
        # setuptools then leaves no build/ folder in the checkout.
        [uv, "build", "--quiet", "--project", str(REPO_ROOT), "--out-dir", str(build / "wheels")],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise fail(f"{' '.join(step[:2])} failed: {done.stderr.strip()[-1000:]}")
    for sdist in (build / "wheels").glob("*.tar.gz"):
        sdist.unlink()
    # BentoML takes wheel file names, not patterns: name the one just built.
    bentofile = yaml.safe_load(BENTOFILE.read_text(encoding="utf-8"))
    bentofile["python"]["wheels"] = [f"wheels/{w.name}" for w in sorted((build / "wheels").glob("*.whl"))]
    (build / "bentofile.yaml").write_text(yaml.safe_dump(bentofile, sort_keys=False), encoding="utf-8")
    labels = [f"--label=model_{name}={registered}:{version}" for name, (registered, version) in versions.items()]
    command = [str(Path(sys.executable).with_name("bentoml")), "build", "--bentofile", str(build / "bentofile.yaml"),
               "--output", "tag", *labels, str(build)]
    # BentoML resolves the bentofile's paths against the working folder and refuses any outside it.
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"BENTOML_DO_NOT_TRACK": "True"}, cwd=build)
    if done.returncode != 0:
        raise fail(f"bentoml build failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    tag = done.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    typer.echo(
        f"Built Bento {tag}, pinned to {', '.join(f'{name} {registered} v{version}' for name, (registered, version) in versions.items())} "
        f"(the production profile; build context {build}).\nServe it: bentoml serve {tag}; make its image where Docker runs: "
        f"bentoml containerize {tag}"
    )
    return {"tag": tag, "pinned": pinned, "build": str(build)}


def run_demo_service(cfg: PlatformConfig, ws: Workspace, config_dir: Path) -> None:
    """Start the real service, assess a few buyers over HTTP, print one full answer, stop it."""
    from tradecredit.features.cli import built_as_of
    from tradecredit.ledger import read_normalised_table
    from tradecredit.serving.process import ServerError, running_server

    check_servable(cfg, ws, None)
    as_of = built_as_of(ws).isoformat()
    buyers = read_normalised_table(ws.ledger, "buyers", ["buyer_id"])["buyer_id"].head(len(DEMO_REQUESTS)).to_list()
    try:
        with running_server(ws, config_dir, as_of=as_of) as server:
            typer.echo(f"Scoring service up at {server.url} (clock {as_of}; OpenAPI at {server.url}/docs.json)")
            answers = []
            for buyer, extra in zip(buyers, DEMO_REQUESTS, strict=False):
                status, body = server.post("/assess", {"buyer_id": buyer, **extra})
                if status != 200:
                    raise fail(f"the service answered {status} for {buyer}: {body}")
                answers.append(body)
                typer.echo(
                    f"  {buyer}: PD {body['pd_12m']:.2%}, grade {body['grade']} ({body['tier']}), limit {body['recommended_limit']:,.0f}, "
                    f"decision {body['decision']} ({body['decision_reason']}), premium rate {body['insurance']['premium_rate']:.2%}"
                )
            typer.echo("One full response:")
            typer.echo(json.dumps(answers[0], indent=2, ensure_ascii=False))
    except ServerError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"Decisions logged in {ws.decision_log}. Start the service yourself with: tradecredit --workspace {ws.root} serve --as-of {as_of}")


def run_demo_console(cfg: PlatformConfig, ws: Workspace, config_dir: Path) -> None:
    """Start the service, log in to the console as the demo reviewer over HTTP, read the
    portfolio and alerts pages, print the console's address, stop."""
    import re

    from tradecredit.features.cli import built_as_of
    from tradecredit.serving.console.cli import demo_login
    from tradecredit.serving.console.client import ConsoleClient
    from tradecredit.serving.process import ServerError, running_server

    user, password = demo_login(cfg, ws)
    as_of = built_as_of(ws).isoformat()
    base = cfg.console.path
    try:
        with running_server(ws, config_dir, as_of=as_of) as server:
            client = ConsoleClient(server.url, base)
            if client.login(user, password).status != 303:
                raise fail("the demo reviewer could not log in to the console")
            portfolio = client.get("/")
            alerts = client.get("/alerts")
            if portfolio.status != 200 or alerts.status != 200:
                raise fail(f"the console answered {portfolio.status} / {alerts.status}")
            summary = re.search(r'id="portfolio-summary">\s*<strong>([\d,]+)</strong>', portfolio.body)
            counts = re.search(r'<span class="tag red">(\d+) red</span> <span class="tag yellow">(\d+) yellow</span>', alerts.body)
            typer.echo(
                f"Console up at {server.url}{base}/: logged in as '{user}'; the portfolio page lists "
                f"{summary.group(1) if summary else '?'} buyers, the alerts page {counts.group(1) if counts else '?'} red and "
                f"{counts.group(2) if counts else '?'} yellow open alerts."
            )
    except ServerError as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"Risk reviewer console: run `tradecredit --workspace {ws.root} serve --as-of {as_of}` and open "
        f"http://{cfg.serving.host}:{cfg.serving.port}{base}/ (user '{user}', password in {ws.root / 'console' / 'demo-login.txt'}; "
        "add reviewers with `tradecredit console add-user NAME`)."
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def package(ctx: typer.Context) -> None:
        """Build a Bento of the scoring service pinned to the current champion versions (bentofile.yaml)."""
        run_package(config_of(ctx), ctx.obj.workspace, ctx.obj.config_dir)

    @app.command()
    def serve(
        ctx: typer.Context,
        port: Annotated[int | None, typer.Option(help="Port (default from configs/serving.yaml).")] = None,
        host: Annotated[str | None, typer.Option(help="Address to listen on (default from configs/serving.yaml: loopback).")] = None,
        as_of: Annotated[
            str | None,
            typer.Option(
                "--as-of",
                help="Assess as if now were this date (YYYY-MM-DD, end of day UTC) or ISO time: for a simulated or "
                "historical portfolio. Default: the wall clock.",
            ),
        ] = None,
    ) -> None:
        """Start the scoring service (BentoML) on the champion models and the online features."""
        from tradecredit.serving.process import serve_command, serve_environment

        cfg = config_of(ctx)
        ws: Workspace = ctx.obj.workspace
        check_servable(cfg, ws, as_of)
        chosen_host, chosen_port = host or cfg.serving.host, port or cfg.serving.port
        typer.echo(
            f"Serving {ws.root} at http://{chosen_host}:{chosen_port} (OpenAPI: /docs.json; reviewer console: "
            f"http://{chosen_host}:{chosen_port}{cfg.console.path}/; Ctrl-C stops it)"
        )
        completed = subprocess.run(serve_command(chosen_host, chosen_port), env=serve_environment(ws, ctx.obj.config_dir, as_of), check=False)
        raise typer.Exit(code=completed.returncode)
