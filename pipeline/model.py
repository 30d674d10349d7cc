"""The model train and evaluate share: the tutorial's torch.nn.Linear(1, 1), that is y = m·x + c."""

import warnings
from pathlib import Path

import torch

from pipeline.errors import PipelineError
from pipeline.files import atomic_output, require_file

# The only state_dict a line model has: weight is m, bias is c.
STATE_SHAPES = {"weight": (1, 1), "bias": (1,)}


def make_model() -> torch.nn.Linear:
    return torch.nn.Linear(1, 1)


def line_of(model: torch.nn.Linear) -> tuple[float, float]:
    """The slope m and intercept c the model currently holds."""
    return model.weight.item(), model.bias.item()


def save_model(model: torch.nn.Linear, path: Path) -> None:
    with atomic_output(path) as temporary, temporary.open("wb") as file:
        # A file object, not a path: torch names the archive inside after a path, which would put the
        # temporary name into the bytes.
        torch.save(model.state_dict(), file)


def load_model(path: Path) -> torch.nn.Linear:
    """Load a plain state_dict into a new line model; anything else is refused and never executed."""
    require_file(path)
    try:
        # weights_only: the unpickler accepts tensors and plain containers only, so a payload never runs.
        # Its warnings about a file it then refuses anyway would only bury the one line below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, weights_only=True)
    except Exception as error:  # torch raises many types for a bad file; all mean the same to the user
        raise PipelineError(f"{path}: not a plain state_dict of the line model ({type(error).__name__})") from None
    if not isinstance(state, dict) or set(state) != set(STATE_SHAPES):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise PipelineError(f"{path}: holds {found}: expected a state_dict with weight and bias")
    for name, shape in STATE_SHAPES.items():
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape or tensor.dtype != torch.float32:
            found = f"{tuple(tensor.shape)} {tensor.dtype}" if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise PipelineError(f"{path}: {name} is {found}: expected a float32 tensor of shape {shape}")
        if not torch.isfinite(tensor).all():
            raise PipelineError(f"{path}: {name} is {tensor.tolist()}: expected finite numbers")
    model = make_model()
    model.load_state_dict(state)
    return model
