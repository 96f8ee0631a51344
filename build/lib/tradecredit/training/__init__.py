"""Training: out-of-time splits, tuned LightGBM, calibration, evaluation, MLflow registry, champion gate."""
