"""What a scikit-learn user would write: pandas reads the table, LinearRegression fits and predicts every row
(no intervals, no file). bench/alternatives.py times it; run: `python bench/sklearn_script.py TABLE.parquet`."""

import sys

import pandas as pd
from sklearn.linear_model import LinearRegression

points = pd.read_parquet(sys.argv[1])
model = LinearRegression().fit(points[["x"]], points["y"])
prediction = model.predict(points[["x"]])
print(model.coef_, model.intercept_, prediction[:3])
