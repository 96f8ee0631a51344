"""Two commands opening a new tracking database at once: the loser of MLflow's table creation
retries and finds the tables made; a database that never opens still fails, with its error."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from tradecredit.training import registry


class RacingClient:
    """Fails its first ``losses`` calls the way the loser of a concurrent CREATE TABLE does."""

    def __init__(self, losses: int) -> None:
        self.losses, self.calls = losses, 0

    def search_experiments(self, max_results: int) -> list:
        self.calls += 1
        if self.calls <= self.losses:
            raise sqlalchemy.exc.IntegrityError("CREATE TABLE alembic_version", {}, Exception("duplicate key value violates unique constraint"))
        return []

    def search_registered_models(self, max_results: int) -> list:
        return []


def test_the_loser_of_a_table_creation_race_retries(monkeypatch):
    monkeypatch.setattr(registry.time, "sleep", lambda seconds: None)
    client = RacingClient(losses=2)
    registry._create_tables(client, attempts=3)
    assert client.calls == 3


def test_a_database_that_never_opens_fails_with_its_own_error(monkeypatch):
    monkeypatch.setattr(registry.time, "sleep", lambda seconds: None)
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="duplicate key"):
        registry._create_tables(RacingClient(losses=5), attempts=3)
