"""MLflow "models from code" entry point: the registry stores this file, not a pickle."""

import mlflow

from tradecredit.training.registry import CreditPyfunc

mlflow.models.set_model(CreditPyfunc())
