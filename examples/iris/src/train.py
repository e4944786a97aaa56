"""Train: logistic regression on data/train.csv → models/model.pkl."""
import pickle

import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression

params = yaml.safe_load(open("params.yaml"))["train"]
train = pd.read_csv("data/train.csv")
X, y = train.drop(columns=["target"]), train["target"]
model = LogisticRegression(C=params["C"], max_iter=params["max_iter"], random_state=params["seed"])
model.fit(X, y)
with open("models/model.pkl", "wb") as f:
    pickle.dump(model, f, protocol=4)
print(f"trained LogisticRegression(C={params['C']}) on {len(train)} rows; train accuracy {model.score(X, y):.4f}")
