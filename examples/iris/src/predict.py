"""Serving: Kiln's inference server calls load(path) once, then predict(model, inputs) per request.

inputs maps each input's name to its v2 tensor: {"name", "shape", "datatype", "data"} with data flattened row-major.
Return a dict of output name -> values (a list, nested lists or a numpy array).
"""
import pickle

import numpy as np

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
INPUTS = [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}]
OUTPUTS = [{"name": "class", "datatype": "INT64", "shape": [-1]}]


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def predict(model, inputs):
    import pandas as pd

    x = inputs["features"]
    rows = np.asarray(x["data"], dtype=float).reshape(x["shape"])
    return {"class": model.predict(pd.DataFrame(rows, columns=FEATURES)).astype(int)}
