"""The tutorial as one plain script, what a user would write instead of the pipeline: 1,000 points on
y = 2.5·x − 1 with noise, torch.nn.Linear(1, 1), MSE, torch.optim.SGD for 1,000 full-batch epochs, four PNGs.

bench/everyday.py times it against `dvc repro -f` of the default params. Run: `python bench/plain_tutorial.py
FOLDER` writes data.png, loss.png, fit.png and parameters.png there; with --phases it prints, on stderr, the
seconds from its start to the end of its imports, of its training and of its pictures.
"""

import sys
import time

start = time.perf_counter()

import matplotlib  # noqa: E402  (timed from the very start)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

imported = time.perf_counter()
folder = sys.argv[1]

torch.manual_seed(42)
x = torch.rand(1000, 1) * 10 - 5
y = 2.5 * x - 1 + torch.randn(1000, 1)

model = torch.nn.Linear(1, 1)
loss_function = torch.nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
losses, slopes, intercepts = [], [], []
for epoch in range(1000):
    optimizer.zero_grad()
    loss = loss_function(model(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    slopes.append(model.weight.item())
    intercepts.append(model.bias.item())
trained = time.perf_counter()

line = torch.linspace(-5, 5, 2)
plt.scatter(x, y, s=4)
plt.plot(line, 2.5 * line - 1, color="green", label="true line")
plt.xlabel("x"), plt.ylabel("y"), plt.legend()
plt.savefig(f"{folder}/data.png")
plt.close()

plt.plot(losses)
plt.yscale("log"), plt.xlabel("epoch"), plt.ylabel("MSE")
plt.savefig(f"{folder}/loss.png")
plt.close()

plt.scatter(x, y, s=4)
with torch.no_grad():
    plt.plot(line, model(line[:, None])[:, 0], color="red", label="learnt")
plt.plot(line, 2.5 * line - 1, color="green", linestyle="--", label="true line")
plt.xlabel("x"), plt.ylabel("y"), plt.legend()
plt.savefig(f"{folder}/fit.png")
plt.close()

plt.plot(slopes, label="m")
plt.plot(intercepts, label="c")
plt.xlabel("epoch"), plt.legend()
plt.savefig(f"{folder}/parameters.png")
plt.close()
drawn = time.perf_counter()

if "--phases" in sys.argv:
    print(f"imports {imported - start:.3f} training {trained - imported:.3f} pictures {drawn - trained:.3f}",
          file=sys.stderr)
