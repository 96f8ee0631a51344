"""``tradecredit serve`` and ``tradecredit package``: thin commands over the serving stages."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from tradecredit.cli_support import config_of, stage
from tradecredit.serving import pipeline
from tradecredit.workspace import Workspace


def register(app: typer.Typer) -> None:
    @app.command()
    def package(ctx: typer.Context) -> None:
        """Build a Bento of the scoring service pinned to the current champion versions (bentofile.yaml)."""
        with stage():
            typer.echo(pipeline.package(config_of(ctx), ctx.obj.workspace, ctx.obj.config_dir).describe())

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
        with stage():
            pipeline.check_servable(cfg, ws, as_of)
        chosen_host, chosen_port = host or cfg.serving.host, port or cfg.serving.port
        typer.echo(
            f"Serving {ws.root} at http://{chosen_host}:{chosen_port} (OpenAPI: /docs.json; reviewer console: "
            f"http://{chosen_host}:{chosen_port}{cfg.console.path}/; Ctrl-C stops it)"
        )
        typer.echo(pipeline.key_hint(cfg, ws))
        completed = subprocess.run(serve_command(chosen_host, chosen_port), env=serve_environment(ws, ctx.obj.config_dir, as_of), check=False)
        raise typer.Exit(code=completed.returncode)
