"""Which online features can refer a decision as stale: only those the served models read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradecredit.features.store import OnlineFeatures
from tradecredit.serving.engine import freshness


def test_a_stale_feature_no_model_reads_does_not_count():
    now = datetime(2026, 12, 31, tzinfo=UTC)
    fresh, old = (now - timedelta(days=1)).timestamp(), (now - timedelta(days=40)).timestamp()
    online = OnlineFeatures(
        ["B1", "B2"], ["late_share_90d", "market_late_share_90d"],
        {"late_share_90d": [0.1, 0.2], "late_share_90d__ts": [fresh, fresh],
         "market_late_share_90d": [0.3, None], "market_late_share_90d__ts": [old, 0]},
        now, 3,
    )
    every = freshness(online, now)
    assert every[0].stale == ["market_late_share_90d"] and every[1].stale == ["market_late_share_90d"]
    assert every[0].age_days == 40.0, "the oldest snapshot among all features"
    read = freshness(online, now, {"late_share_90d"})
    assert read[0].stale == [] and read[1].stale == [] and read[0].age_days == 1.0 and read[1].known
    # A buyer whose read features are all missing is unknown, whatever else is served.
    gone = OnlineFeatures(["B3"], ["late_share_90d", "market_late_share_90d"],
                          {"late_share_90d": [None], "late_share_90d__ts": [0], "market_late_share_90d": [0.3], "market_late_share_90d__ts": [fresh]}, now, 3)
    assert freshness(gone, now)[0].known and not freshness(gone, now, {"late_share_90d"})[0].known
