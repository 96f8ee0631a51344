"""The serving stages without HTTP of their own: whether the service can start, a Bento of it
pinned to the champion versions, and the demo's look at the running service and console. Plain
functions that raise :class:`StageError`; the command line prints what they return."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tradecredit.config import PlatformConfig
from tradecredit.errors import MissingArtefact, StageError
from tradecredit.sql_stores import decision_log_url, store_name, users_url
from tradecredit.workspace import Workspace

DEMO_REQUESTS: list[dict[str, Any]] = [
    {"order": {"amount": 25000, "terms_days": 60}, "requested_limit": 100000},
    {"order": {"amount": 5000, "terms_days": 30}},
    {},
]
# Where the checkout keeps the pinned uv that `make install` puts there.
REPO_ROOT = Path(__file__).resolve().parent.parent
BENTOFILE = Path(__file__).with_name("bentofile.yaml")


def check_servable(cfg: PlatformConfig, ws: Workspace, as_of: str | None) -> None:
    """A :class:`StageError` before BentoML starts when the service could not start."""
    from tradecredit.features.pipeline import open_feature_store
    from tradecredit.serving.process import AS_OF_ENV, parse_as_of
    from tradecredit.training.registry import champion_versions, connect

    try:
        parse_as_of(as_of)
    except ValueError as exc:
        raise StageError(str(exc).replace(AS_OF_ENV, "--as-of")) from None
    if not cfg.backends.feast_registry and not ws.feature_paths().registry_db.exists():
        raise MissingArtefact(f"no feature store in {ws.root}: run `tradecredit features apply` and `features materialize` first")
    # A registry from an earlier release lacks this release's feature services (v2): say so
    # here, not as Feast's exception inside a worker after the service has started.
    open_feature_store(cfg, ws)
    champion_versions(connect(ws, cfg.backends), cfg)


def _uv() -> str:
    found = shutil.which("uv") or (str(REPO_ROOT / ".tools" / "bin" / "uv") if (REPO_ROOT / ".tools" / "bin" / "uv").exists() else None)
    if not found or not (REPO_ROOT / "uv.lock").exists():
        raise StageError(f"packaging needs the project checkout with its uv.lock and uv (run `make install` in {REPO_ROOT})")
    return found


@dataclass(frozen=True)
class PackageResult:
    tag: str
    pinned: dict[str, dict[str, str]]
    build: Path

    def describe(self) -> str:
        pins = ", ".join(f"{name} {p['registered_model']} v{p['version']}" for name, p in self.pinned.items())
        return (f"Built Bento {self.tag}, pinned to {pins} (the production profile; build context {self.build}).\n"
                f"Serve it: bentoml serve {self.tag}; make its image where Docker runs: bentoml containerize {self.tag}")


def package(cfg: PlatformConfig, ws: Workspace, config_dir: Path) -> PackageResult:
    """Build a Bento of the scoring service pinned to today's champion versions: the project's
    wheel, the lock's runtime requirements, the configs and pinned_models.json, assembled in
    WORKSPACE/bento/build and built by `bentoml build` into BentoML's store."""
    from tradecredit.training.registry import champion_versions, connect

    versions = champion_versions(connect(ws, cfg.backends), cfg)
    uv = _uv()
    build = ws.bento_build
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
            raise StageError(f"{' '.join(step[:2])} failed: {done.stderr.strip()[-1000:]}")
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
        raise StageError(f"bentoml build failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    tag = done.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    return PackageResult(tag, pinned, build)


def key_hint(cfg: PlatformConfig, ws: Workspace) -> str:
    """One line on the API keys a caller needs."""
    from tradecredit.serving.access import ApiKeys

    if not cfg.serving.api_keys.required:
        return "API keys are off (serving.api_keys.required: false): a gateway in front must authenticate callers."
    keys = ApiKeys(users_url(cfg.backends, ws))
    try:
        active = [k for k in keys.rows() if k.revoked_at is None]
    finally:
        keys.close()
    if not active:
        return "No API key yet: every call but the probes needs one; create a seller's with `tradecredit console add-key SELLER`."
    return f"{len(active)} active API key(s) (`tradecredit console keys`); calls send 'Authorization: Bearer <key>'."


def demo_service(cfg: PlatformConfig, ws: Workspace, config_dir: Path, echo: Callable[[str], None]) -> None:
    """Start the real service, assess a few buyers over HTTP, print one full answer, stop it."""
    from tradecredit.serving.process import ServerError, running_server

    check_servable(cfg, ws, None)
    as_of = ws.built_as_of().isoformat()
    buyers = ws.read_ledger_table("buyers", ["buyer_id"])["buyer_id"].head(len(DEMO_REQUESTS)).to_list()
    try:
        with running_server(ws, config_dir, as_of=as_of) as server:
            echo(f"Scoring service up at {server.url} (clock {as_of}; OpenAPI at {server.url}/docs.json)")
            answers = []
            for buyer, extra in zip(buyers, DEMO_REQUESTS, strict=False):
                status, body = server.post("/assess", {"buyer_id": buyer, **extra})
                if status != 200:
                    raise StageError(f"the service answered {status} for {buyer}: {body}")
                answers.append(body)
                echo(
                    f"  {buyer}: PD {body['pd_12m']:.2%}, grade {body['grade']} ({body['tier']}), limit {body['recommended_limit']:,.0f}, "
                    f"decision {body['decision']} ({body['decision_reason']}), premium rate {body['insurance']['premium_rate']:.2%}"
                )
            echo("One full response:")
            echo(json.dumps(answers[0], indent=2, ensure_ascii=False))
    except ServerError as exc:
        raise StageError(str(exc)) from None
    echo(f"Decisions logged in {store_name(decision_log_url(cfg.backends, ws))}. Start the service yourself with: tradecredit --workspace {ws.root} serve --as-of {as_of}")


def demo_console(cfg: PlatformConfig, ws: Workspace, config_dir: Path, echo: Callable[[str], None]) -> None:
    """Start the service, log in to the console as the demo reviewer over HTTP, read the
    portfolio and alerts pages, print the console's address, stop."""
    from tradecredit.serving.console.client import ConsoleClient
    from tradecredit.serving.console.users import demo_login
    from tradecredit.serving.process import ServerError, running_server

    user, password = demo_login(cfg, ws)
    as_of = ws.built_as_of().isoformat()
    base = cfg.console.path
    try:
        with running_server(ws, config_dir, as_of=as_of) as server:
            client = ConsoleClient(server.url, base)
            if client.login(user, password).status != 303:
                raise StageError("the demo reviewer could not log in to the console")
            portfolio = client.get("/")
            alerts = client.get("/alerts")
            if portfolio.status != 200 or alerts.status != 200:
                raise StageError(f"the console answered {portfolio.status} / {alerts.status}")
            summary = re.search(r'id="portfolio-summary">\s*<strong>([\d,]+)</strong>', portfolio.body)
            counts = re.search(r'<span class="tag red">(\d+) red</span> <span class="tag yellow">(\d+) yellow</span>', alerts.body)
            echo(
                f"Console up at {server.url}{base}/: logged in as '{user}'; the portfolio page lists "
                f"{summary.group(1) if summary else '?'} buyers, the alerts page {counts.group(1) if counts else '?'} red and "
                f"{counts.group(2) if counts else '?'} yellow open alerts."
            )
            demo_credit_desk(cfg, ws, server, client, echo)
    except ServerError as exc:
        raise StageError(str(exc)) from None
    echo(
        f"Risk reviewer console: run `tradecredit --workspace {ws.root} serve --as-of {as_of}` and open "
        f"http://{cfg.serving.host}:{cfg.serving.port}{base}/ (user '{user}', password in {ws.demo_login}; "
        "add reviewers with `tradecredit console add-user NAME`)."
    )


DEMO_APPROVER = "demo-approver"


def demo_credit_desk(cfg: PlatformConfig, ws: Workspace, server: Any, client: Any, echo: Callable[[str], None]) -> None:
    """An ERP with its seller's API key requests a line; the demo's reviewers approve it in the
    console under the authority matrix; an order is then decided against the granted line."""
    from tradecredit.serving.console.users import ensure_user, opened_keys
    from tradecredit.serving.process import post_json

    invoices = ws.read_ledger_table("invoices", ["buyer_id", "seller_id"])
    seller = str(invoices["seller_id"].mode().sort()[0])
    with opened_keys(cfg, ws) as keys:
        key_id, secret = keys.add(seller)
    headers = {"Authorization": f"Bearer {secret}"}
    echo(f"\n-- Credit management: the ERP of seller {seller} (API key {key_id}) asks for a line")
    candidates = invoices.filter(invoices["seller_id"] == seller)["buyer_id"].unique().sort().head(40).to_list()
    chosen = None
    for buyer in candidates:
        status, body = post_json(server.url + "/assess", {"buyer_id": buyer}, headers=headers)
        if status == 200 and body["decision"] == "approve" and body["tier"] in ("low", "medium") and body["recommended_limit"] >= body["exposure"] + 20_000:
            chosen = body
            break
    if chosen is None:
        echo("  No clean low- or medium-risk buyer of this seller among the first 40: the credit desk step is skipped.")
        return
    buyer, amount = chosen["buyer_id"], float(chosen["recommended_limit"])
    status, request = post_json(server.url + "/limits/requests", {"buyer_id": buyer, "amount": amount, "terms_days": 30, "client_key": "demo-erp-1", "accept_partial": False}, headers=headers)
    if status not in (200, 201):
        raise StageError(f"the limit request was refused ({status}): {request}")
    echo(f"  POST /limits/requests {buyer} {amount:,.0f} on 30 days: {request['status']} "
         f"(grade {request['grade']}, {request['tier']} risk, {request['approvals_needed']} approval(s) needed): {request['reason']}")
    rid = request["request_id"]
    approvers = [client]
    if request["approvals_needed"] >= 2:
        password = ensure_user(cfg, ws, DEMO_APPROVER, ("approver",))
        second = type(client)(server.url, cfg.console.path)
        if second.login(DEMO_APPROVER, password).status != 303:
            raise StageError("the demo's second approver could not log in to the console")
        approvers.append(second)
    # A rerun on the same workspace replays the same client key: the line is already decided.
    waiting = request["status"] in ("pending_approval", "referred")
    for reviewer in approvers[: request["approvals_needed"] if waiting else 0]:
        reviewer.get(f"/limits/requests/{rid}")
        answer = reviewer.post_form(f"/limits/requests/{rid}/decide", {"verdict": "approve", "reason": "statements and payment history reviewed"})
        if answer.status != 303:
            raise StageError(f"the console refused the approval ({answer.status})")
    status, line = server.get(f"/limits/{seller}/{buyer}", headers=headers)
    if status != 200:
        raise StageError(f"GET /limits answered {status}: {line}")
    l = line["line"]
    echo(f"  Approved in the console by {l['decided_by']}: line {l['granted']:,.0f} ({l['status']}), valid to {l['valid_to']}, "
         f"next review {l['next_review_on']}; {len(line['events'])} events in the register.")
    order = max(100.0, round((l["granted"] - chosen["exposure"]) / 2, -2))
    status, body = post_json(server.url + "/assess", {"buyer_id": buyer, "order": {"amount": order, "terms_days": 30}}, headers=headers)
    if status != 200:
        raise StageError(f"the order was refused ({status}): {body}")
    echo(f"  POST /assess order {order:,.0f} on 30 days: {body['decision']} against the {body['limit_source']} line "
         f"{body['granted_limit']:,.0f} (exposure {body['exposure']:,.0f}): {body['decision_reason']}")
    echo(f"  The credit desk: {server.url}{cfg.console.path}/limits")
