"""``tradecredit insurance quote`` and ``backtest`` on the demo's workspace, as a user runs them:
a seller's policy with its structure and contributions, a what-if that is not saved, the
pricing backtest, and errors that say what to do."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tradecredit.cli import app
from tradecredit.workspace import Workspace


def test_a_seller_gets_a_policy_quote_a_what_if_and_a_backtest(demo_run):
    ws = Workspace(demo_run.workspace)

    def invoke(*args: str):
        return CliRunner().invoke(app, ["--workspace", str(ws.root), "--config-dir", str(demo_run.configs), "insurance", *args])

    seller = str(ws.read_ledger_table("invoices", ["seller_id"])["seller_id"].mode().sort()[0])
    saved = ws.policy_quote(seller)
    before = saved.read_text() if saved.exists() else None  # the demo's own quote
    try:
        done = invoke("quote", "--seller", seller, "--json")
        assert done.exit_code == 0, done.output
        answer = json.loads(done.output)
        q = answer["quote"]
        assert q["buyers"] == len(q["contributions"]) > 0 and q["insured_share"] == 0.9
        assert abs(sum(c["premium"] for c in q["contributions"]) - q["premium"]) < 1e-6 * q["premium"]
        assert q["premium"] > q["expected_loss"] > 0 and q["loss_ratio"] == q["expected_loss"] / q["premium"]
        assert all(c["exposure_at_default"] <= c["limit"] + 1e-9 for c in q["contributions"])
        assert answer["stress"]["premium"] > q["premium"] and answer["stress"]["loss_ratio_if_not_repriced"] > q["loss_ratio"]
        assert json.loads(saved.read_text())["quote"]["premium_rate"] == q["premium_rate"]  # the service prices orders at it

        top = max(q["contributions"], key=lambda c: c["premium"])["buyer_id"]
        what_if = invoke("quote", "--seller", seller, "--remove", top)
        assert what_if.exit_code == 0, what_if.output
        assert "what-if: premium" in what_if.output and top not in what_if.output.split("largest contributions")[1]
        assert json.loads(saved.read_text())["quote"]["premium"] == q["premium"], "a what-if is not saved"

        backtest = invoke("backtest")
        assert backtest.exit_code == 0, backtest.output
        found = json.loads((ws.insurance / "backtest.json").read_text())
        assert found["total"]["premium"] > 0 and "Pricing backtest: policies quoted on" in backtest.output
        assert found["total"]["defaults"] <= found["total"]["buyers"]

        for args, message in ((("quote", "--seller", "NOBODY"), "no seller 'NOBODY'"), (("quote", "--seller", seller, "--add", "B1:lots"), "BUYER[:TURNOVER"),
                              (("backtest", "--as-of", "2099-01-01"), "not in the data yet")):
            refused = invoke(*args)
            assert refused.exit_code == 2 and message in refused.output and isinstance(refused.exception, SystemExit), refused.output
    finally:
        if before is None:
            saved.unlink(missing_ok=True)
        else:
            saved.write_text(before)  # the session's later servers price orders as the demo left them
