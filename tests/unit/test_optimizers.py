"""sgd and adam step through torch.optim's functional API: the same bits as torch.optim.SGD and torch.optim.Adam,
step after step, without loading torch._dynamo."""

import subprocess
import sys

import pytest
import torch

from pipeline.optimizers import make_optimizer
from pipeline.params import TrainParams, load_params
from workspace import ROOT

DEFAULTS = load_params(TrainParams, ROOT / "params.yaml")


def trajectory(optimizer_of, dtype: torch.dtype, steps: int = 25) -> list[bytes]:
    """The weights' bytes after every step on a fixed least-squares problem, from the same initial weights."""
    torch.manual_seed(3)
    model = torch.nn.Linear(3, 1, dtype=dtype)
    features = torch.randn(40, 3, dtype=dtype)
    target = features @ torch.tensor([[1.5], [-2.0], [0.25]], dtype=dtype) + 0.5
    optimizer = optimizer_of(model)
    seen = []
    for _ in range(steps):
        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(features), target)
            loss.backward()
            return loss
        optimizer.step(closure)
        seen.append(b"".join(parameter.detach().numpy().tobytes() for parameter in model.parameters()))
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("optimizer, momentum, torch_optimizer", [
    ("sgd", 0.0, lambda model: torch.optim.SGD(model.parameters(), lr=0.05)),
    ("sgd", 0.9, lambda model: torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)),
    ("adam", 0.0, lambda model: torch.optim.Adam(model.parameters(), lr=0.05)),
])
def test_every_step_has_the_bits_of_the_torch_optim_class(optimizer, momentum, torch_optimizer, dtype):
    params = TrainParams(**(DEFAULTS.model_dump() | dict(optimizer=optimizer, lr=0.05, momentum=momentum)))
    ours = trajectory(lambda model: make_optimizer(model, params), dtype)
    theirs = trajectory(torch_optimizer, dtype)
    assert ours == theirs
    assert len(set(ours)) == len(ours)  # every step moved the weights


def test_sgd_and_adam_train_without_loading_torch_dynamo():
    # A fresh interpreter: this one may have loaded torch._dynamo for the test above.
    script = """
import sys, torch
from pipeline.optimizers import make_optimizer
from pipeline.params import TrainParams, load_params
defaults = load_params(TrainParams).model_dump()
for name in ("sgd", "adam"):
    model = torch.nn.Linear(2, 1)
    optimizer = make_optimizer(model, TrainParams(**(defaults | dict(optimizer=name, momentum=0.5 if name == "sgd" else 0.0))))
    def closure():
        optimizer.zero_grad()
        loss = model(torch.ones(4, 2)).square().mean()
        loss.backward()
        return loss
    optimizer.step(closure)
print("torch._dynamo" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
