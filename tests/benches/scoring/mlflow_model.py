"""The scoring benchmark's baseline model for `mlflow models serve`.

Fits a scaled logistic regression (scikit-learn) on the benchmark's training rows and saves it
with `mlflow.sklearn`, as a data scientist would before serving it:

    python mlflow_model.py train.csv model_dir

`train.csv` has the feature columns and the label `y`.
"""

import sys

import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(data: str, out: str) -> None:
    rows = pd.read_csv(data)
    x = rows.drop(columns="y")
    y = rows["y"].astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    mlflow.sklearn.save_model(model, out, signature=infer_signature(x, model.predict(x)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
