"""Split: stratified train/test split of data/raw.csv."""
import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

params = yaml.safe_load(open("params.yaml"))["split"]
raw = pd.read_csv("data/raw.csv")
train, test = train_test_split(raw, test_size=params["test_size"], random_state=params["seed"], stratify=raw["target"])
train.to_csv("data/train.csv", index=False, float_format="%.6g")
test.to_csv("data/test.csv", index=False, float_format="%.6g")
print(f"train: {len(train)} rows, test: {len(test)} rows")
