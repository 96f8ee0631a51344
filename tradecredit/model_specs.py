"""The table of models: what each model predicts, for which rows, from which features, and where
its pieces live. Every stage looks a model up here; an unknown name is an error, never a
silent fallback to another model."""

from __future__ import annotations

from dataclasses import dataclass

from tradecredit.errors import StageError


class UnknownModel(StageError, ValueError):
    """A model name that is not in :data:`MODEL_SPECS`."""


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the command-line name: `train default`, `score late`
    label_template: str  # the label column, with {late_days} from configs/labels.yaml
    date_column: str  # the column that places a training row in time (the split is by it)
    keys: tuple[str, ...]  # what identifies a training row
    feature_service: str  # the Feast feature service the model reads (features.catalog.FEATURE_SERVICES)
    experiment: str  # the MLflow experiment its training runs go to
    truth_file: str  # the simulator's truth for this label, in SIMULATED/truth
    truth_keys: tuple[str, ...]
    truth_column: str
    description: str
    # The no-model rule: the buyer's own history as the score, compared with every model.
    no_model_feature: str
    no_model_rule: str
    # The simulator's late-payment truth is for 30 days past due: another labels.late_days
    # asks a different question, which that truth does not answer.
    truth_late_days: int | None = None

    def label(self, late_days: int) -> str:
        return self.label_template.format(late_days=late_days)

    def is_label(self, column: str) -> bool:
        """Whether ``column`` is a label of this model under some ``late_days``."""
        try:
            return column == self.label_template or self.late_days_of(column) is not None
        except StageError:
            return False

    def late_days_of(self, label: str) -> int | None:
        """The ``late_days`` a label of this model was made with (None: the label has no threshold)."""
        if "{late_days}" not in self.label_template:
            return None
        head, tail = self.label_template.split("{late_days}")
        middle = label.removeprefix(head).removesuffix(tail)
        if not (label.startswith(head) and label.endswith(tail) and middle.isdigit()):
            raise StageError(f"'{label}' is not a label of the {self.name} model ({self.label_template})")
        return int(middle)

    def truth_answers(self, late_days: int) -> bool:
        """Whether the simulator's truth is the probability of this label."""
        return self.truth_late_days is None or self.truth_late_days == late_days

    @property
    def tuning_experiment(self) -> str:
        return f"{self.experiment}-tuning"


MODEL_SPECS: dict[str, ModelSpec] = {
    "default": ModelSpec(
        name="default",
        label_template="default_12m",
        date_column="as_of_ts",
        keys=("buyer_id", "as_of_ts"),
        feature_service="default",
        experiment="tradecredit-default-12m",
        truth_file="buyer_month_pd.parquet",
        truth_keys=("buyer_id", "as_of_ts"),
        truth_column="pd_12m",
        description="12-month probability of default, one row per buyer and month",
        no_model_feature="dbt_max_365d",
        no_model_rule="the worst days beyond terms of the buyer's invoices settled in the last year",
    ),
    "late": ModelSpec(
        name="late",
        label_template="late_{late_days}d",
        date_column="issued_on",
        keys=("invoice_id",),
        feature_service="late",
        experiment="tradecredit-late-30d",
        truth_file="invoice_late.parquet",
        truth_keys=("invoice_id",),
        truth_column="p_late_30d",
        description="probability that an order is paid late, one row per invoice",
        no_model_feature="late_share_365d",
        no_model_rule="the share of the buyer's invoices settled in the last year that were settled late",
        truth_late_days=30,
    ),
}
MODELS: tuple[str, ...] = tuple(MODEL_SPECS)


def model_spec(name: str) -> ModelSpec:
    """The spec of a model; :class:`UnknownModel` naming the choices otherwise."""
    try:
        return MODEL_SPECS[name]
    except KeyError:
        raise UnknownModel(f"unknown model '{name}': choose {', '.join(MODELS)}") from None
