-- A second database for MLflow's tracking store, beside Atelier's own.
CREATE DATABASE mlflow;
