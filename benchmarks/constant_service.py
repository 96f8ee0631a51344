"""BentoML's own cost per request on this machine: a service with the scoring service's workers,
threads and request model whose ``/assess`` answers a constant. ``bench_serving.py`` starts it
beside the real service and reports the real one's throughput as a share of this floor.

    bentoml serve constant_service:ConstantService --working-dir benchmarks
"""

from __future__ import annotations

from typing import Any

import bentoml

from tradecredit.config import load_profiled_section
from tradecredit.serving.config import ServingConfig
from tradecredit.serving.schemas import AssessRequest, BuyerId, Money, Order

_SERVING = load_profiled_section(ServingConfig)
# About the size of a real assessment's JSON, so that writing the answer costs the same.
ANSWER: dict[str, Any] = {"buyer_id": "B0", "pd_12m": 0.01, "grade": "A", "reasons": [{"feature": f"f{i}", "contribution": 0.0} for i in range(20)]}


@bentoml.service(
    name="constant", workers=_SERVING.workers, threads=_SERVING.threads_per_worker, traffic={"timeout": 60},
    logging={"access": {"enabled": _SERVING.access_log}},
)
class ConstantService:
    @bentoml.api(route="/assess", input_spec=AssessRequest)
    def assess(self, buyer_id: BuyerId, order: Order | None = None, requested_limit: Money | None = None, seller_id: str | None = None) -> dict[str, Any]:
        return ANSWER
