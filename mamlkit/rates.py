"""Inner learning rates other than one number: learned per layer and step (MAML++'s LSLR), or ANIL's head only.

MAML's inner loop takes every step at one learning rate for every weight. Two published changes replace
that number with a table of rates, one per parameter tensor (a layer's weight, its bias) and per inner step:

- **learned** (MAML++'s LSLR, Antoniou et al. 2019; Meta-SGD, Li et al. 2017, learns one per weight
  element instead): the table starts at the fixed rate and is meta-trained with the weights by the outer
  optimiser, through the inner steps (so it needs second-order meta-training);
- **head** (ANIL, Raghu et al. 2020): the rate is the fixed one for the classifier and 0 for every other
  tensor, so only the head adapts and the body's features (and its BatchNorm batch statistics) stay as
  meta-training left them.

``InnerRates.at(k)`` gives step ``k``'s rates in the order of ``model.parameters()``;
``mamlkit.backends.adapted`` takes an ``InnerRates`` wherever it takes a learning rate. Steps past the last
one in the table reuse the last row (meta-test with more inner steps than meta-training).
"""

from __future__ import annotations

import torch
from torch import nn

from mamlkit.errors import ConfigError

#: The kinds of inner learning rate a meta-training configuration can ask for.
INNER_RATES: dict[str, str] = {
    "fixed": "one fixed rate for every weight and step (MAML)",
    "learned": "a rate per parameter tensor and inner step, meta-trained with the weights (MAML++'s LSLR)",
}

#: Which weights the inner loop adapts.
ADAPTS: dict[str, str] = {
    "all": "every weight adapts (MAML)",
    "head": "only the classifier adapts; the body keeps its meta-trained weights (ANIL)",
}


def head_names(model: nn.Module) -> list[str]:
    """The parameter names of the model's last linear layer (the classifier ANIL adapts)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("adapting the head only (ANIL) needs a model whose classifier is an nn.Linear layer")
    head = linears[-1]
    return [name for name, _ in model.named_parameters() if name.rsplit(".", 1)[0] == head]


class InnerRates(nn.Module):
    """A table of inner learning rates, one per inner step (rows) and parameter tensor (columns).

    Args:
        model: the network whose parameters the rates are for (their names and order are kept).
        steps: rows of the table (the meta-training inner steps).
        lr: the starting rate of every entry.
        learned: make the table a parameter the outer optimiser updates (MAML++'s LSLR).
        adapt: ``"all"``, or ``"head"``: every tensor but the classifier's gets rate 0 (ANIL).
    """

    def __init__(self, model: nn.Module, steps: int, lr: float, learned: bool = False, adapt: str = "all") -> None:
        super().__init__()
        if adapt not in ADAPTS:
            raise ConfigError(f"adapt must be one of {', '.join(ADAPTS)}, got {adapt!r}")
        if steps < 1:
            raise ConfigError(f"a table of inner rates needs at least 1 step, got {steps}")
        self.names = [name for name, _ in model.named_parameters()]
        self.adapt = adapt
        self.learned = learned
        adapted = set(self.names) if adapt == "all" else set(head_names(model))
        self.rates = nn.Parameter(torch.full((steps, len(self.names)), float(lr)), requires_grad=learned)
        self.register_buffer("mask", torch.tensor([1.0 if n in adapted else 0.0 for n in self.names]))

    @property
    def steps(self) -> int:
        return self.rates.shape[0]

    def at(self, step: int) -> list[torch.Tensor]:
        """Step ``step``'s rate of every parameter tensor (0-d tensors), in the order of ``model.parameters()``."""
        row = self.rates[min(step, self.steps - 1)] * self.mask
        return list(row.unbind())

    def table(self) -> dict[str, list[float]]:
        """The rates by parameter name, one value per step (for reading and plotting)."""
        values = (self.rates.detach() * self.mask).t().tolist()
        return dict(zip(self.names, values))

    def extra_repr(self) -> str:
        return f"{self.steps} steps x {len(self.names)} tensors, learned={self.learned}, adapt={self.adapt!r}"


def inner_rates_for(model: nn.Module, inner_rates: str, adapt: str, steps: int, lr: float) -> InnerRates | None:
    """The ``InnerRates`` a meta-training configuration asks for, or None for plain MAML (one fixed rate)."""
    if inner_rates not in INNER_RATES:
        raise ConfigError(f"inner_rates must be one of {', '.join(INNER_RATES)}, got {inner_rates!r}")
    if inner_rates == "fixed" and adapt == "all":
        return None
    device = next(model.parameters()).device
    return InnerRates(model, max(steps, 1), lr, learned=inner_rates == "learned", adapt=adapt).to(device)


__all__ = ["INNER_RATES", "ADAPTS", "InnerRates", "inner_rates_for", "head_names"]
