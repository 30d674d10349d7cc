"""What a statsmodels user would write instead of the pipeline, at any size: pandas reads the table, OLS with an
intercept, its summary, every row predicted with its 95% prediction interval and written to Parquet, one plot.

bench/alternatives.py times it against `dvc repro -f`. Needs bench/requirements.txt (never the project's); run:
`python bench/statsmodels_script.py TABLE.parquet OUT_FOLDER`.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402

table, folder = sys.argv[1], sys.argv[2]
points = pd.read_parquet(table)
features = sm.add_constant(points[["x"]])
fit = sm.OLS(points["y"], features).fit()
print(fit.summary())

predicted = fit.get_prediction(features).summary_frame(alpha=0.05)
out = points.assign(prediction=predicted["mean"], lower=predicted["obs_ci_lower"], upper=predicted["obs_ci_upper"])
out.to_parquet(f"{folder}/predictions.parquet", index=False)

shown = points.sample(2000, random_state=0)  # as many points as the pipeline's scatters show
plt.scatter(shown["x"], shown["y"], s=4)
ends = pd.DataFrame({"const": 1.0, "x": [points["x"].min(), points["x"].max()]})
plt.plot(ends["x"], fit.predict(ends), color="red")
plt.savefig(f"{folder}/fit.png")
