"""The optimiser train.optimizer names: torch.optim's own step, with its state held here for sgd and adam.

torch.optim's Optimizer classes import torch._dynamo (2 s, more than the whole tutorial's training) the
first time one is built or stepped: their methods are wrapped so that torch.compile never traces them, and
the wrapper loads the compiler to say so. The same steps are torch.optim's public functional API
(torch.optim.sgd.sgd, torch.optim.adam.adam), the functions the classes call, which load nothing: called
with the state and arguments the classes would pass, they give the same bits (tests/unit/test_optimizers.py).
L-BFGS has no functional form: it stays the class, and pays the import (docs/design.md).
"""

from collections.abc import Callable

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

from pipeline.params import TrainParams

Closure = Callable[[], torch.Tensor]


class _Functional:
    """What torch.optim.Optimizer does around its functional update: zero_grad, and a step that evaluates the
    closure with gradients, then updates the parameters that have one."""

    parameters: list[torch.Tensor]

    def _foreach(self) -> bool | None:
        """The functional API's `foreach`: False on the CPU, where its default (worked out again at each call
        from the tensors' devices: 16 µs of a mini-batch step's 200) is the loop over single tensors; elsewhere
        None, its default."""
        return False if all(parameter.device.type == "cpu" for parameter in self.parameters) else None

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.grad = None

    def step(self, closure: Closure) -> torch.Tensor:
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            self._update([index for index, parameter in enumerate(self.parameters) if parameter.grad is not None])
        return loss

    def _update(self, stepped: list[int]) -> None:
        raise NotImplementedError


class FunctionalSGD(_Functional):
    """torch.optim.SGD(parameters, lr, momentum), stepped through torch.optim.sgd.sgd."""

    def __init__(self, parameters: list[torch.Tensor], lr: float, momentum: float = 0.0):
        self.parameters, self.lr, self.momentum = parameters, lr, momentum
        self.momentum_buffers: list[torch.Tensor | None] = [None] * len(parameters)
        self.foreach = self._foreach()

    def _update(self, stepped: list[int]) -> None:
        # As SGD.step: the parameters with a gradient, their buffers (None until the first step fills them).
        buffers = [self.momentum_buffers[index] for index in stepped] if self.momentum != 0 else []
        sgd([self.parameters[index] for index in stepped], [self.parameters[index].grad for index in stepped],
            buffers, foreach=self.foreach, weight_decay=0.0, momentum=self.momentum, lr=self.lr, dampening=0.0,
            nesterov=False, maximize=False)
        for index, buffer in zip(stepped, buffers):
            self.momentum_buffers[index] = buffer


class FunctionalAdam(_Functional):
    """torch.optim.Adam(parameters, lr) with its default betas and eps, stepped through torch.optim.adam.adam."""

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, parameters: list[torch.Tensor], lr: float):
        self.parameters, self.lr = parameters, lr
        # Adam's state as Adam._init_group makes it: a float step count on the CPU, zero moments.
        step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        self.steps = [torch.tensor(0.0, dtype=step_dtype) for _ in parameters]
        self.exp_avgs = [torch.zeros_like(parameter, memory_format=torch.preserve_format) for parameter in parameters]
        self.exp_avg_sqs = [torch.zeros_like(parameter, memory_format=torch.preserve_format) for parameter in parameters]
        self.foreach = self._foreach()

    def _update(self, stepped: list[int]) -> None:
        adam([self.parameters[index] for index in stepped], [self.parameters[index].grad for index in stepped],
             [self.exp_avgs[index] for index in stepped], [self.exp_avg_sqs[index] for index in stepped], [],
             [self.steps[index] for index in stepped], foreach=self.foreach, amsgrad=False, beta1=self.BETAS[0],
             beta2=self.BETAS[1], lr=self.lr, weight_decay=0.0, eps=self.EPS, maximize=False)


def make_optimizer(model: torch.nn.Module, params: TrainParams) -> "FunctionalSGD | FunctionalAdam | torch.optim.LBFGS":
    """The optimiser of train.optimizer over the model's parameters: anything with zero_grad() and step(closure)."""
    if params.optimizer == "sgd":
        return FunctionalSGD(list(model.parameters()), params.lr, params.momentum)
    if params.optimizer == "adam":
        return FunctionalAdam(list(model.parameters()), params.lr)
    # One epoch is one L-BFGS iteration: a quasi-Newton step whose length a strong-Wolfe line search
    # chooses, over the full batch. No early stop: the epochs are the budget.
    return torch.optim.LBFGS(model.parameters(), lr=params.lr, max_iter=1, max_eval=25, history_size=20,
                             tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
