"""Ingest: scikit-learn's bundled iris data set (no download) → data/raw.csv."""
from sklearn.datasets import load_iris

frame = load_iris(as_frame=True).frame
frame.to_csv("data/raw.csv", index=False, float_format="%.6g")
print(f"wrote data/raw.csv: {len(frame)} rows, {frame.shape[1]} columns")
