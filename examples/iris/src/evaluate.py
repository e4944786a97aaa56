"""Evaluate: accuracy of models/model.pkl on data/test.csv → metrics/eval.json."""
import json
import pickle

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

test = pd.read_csv("data/test.csv")
X, y = test.drop(columns=["target"]), test["target"]
with open("models/model.pkl", "rb") as f:
    model = pickle.load(f)
pred = model.predict(X)
metrics = {"accuracy": round(float(accuracy_score(y, pred)), 6), "f1_macro": round(float(f1_score(y, pred, average="macro")), 6), "n_test": int(len(test))}
with open("metrics/eval.json", "w") as f:
    json.dump(metrics, f, indent=2, sort_keys=True)
print(f"accuracy {metrics['accuracy']:.4f} on {len(test)} test rows")
