"""The models the lessons use: the standard Conv4 for images and a small MLP for sinusoids."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from mamlkit.errors import ConfigError, check_choice
from mamlkit.norms import NORMS, is_context_norm, make_norm
from mamlkit.plumbing import checks, machine


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: part of the cache key of a meta-trained model.

    Attributes:
        kind: ``"conv4"`` or ``"mlp"``.
        n_out: classes (N-way) for conv4, outputs for mlp.
        in_channels: image channels (conv4).
        hidden: channels per conv block (conv4; 32 by default for CPU, 64 in the papers) or
            units per hidden layer (mlp).
        norm: normalisation layer name (see ``mamlkit.norms.NORMS``).
        bn_momentum: BatchNorm momentum for running statistics.
        dropout: dropout probability before the classifier (0 = none).
        norm_steps: inner steps a per-step normalisation (``bn_per_step``) keeps statistics, weights and
            biases for; in the configuration (and a cached model's key) only for that norm.
        downsample: how conv4 halves its feature maps: ``"pool"`` (a 2x2 max-pool after each block, the
            default) or ``"stride"`` (stride-2 convolutions and no pooling, the network of Finn et al.'s
            Omniglot experiments); in the configuration (and a cached model's key) only when not ``"pool"``.
    """

    kind: str = "conv4"
    n_out: int = 5
    in_channels: int = 1
    hidden: int = 32
    norm: str = "bn"
    bn_momentum: float = 0.1
    dropout: float = 0.0
    norm_steps: int = 5
    downsample: str = "pool"

    def __post_init__(self) -> None:
        check_choice("model kind", self.kind, ("conv4", "mlp"))
        for name in ("n_out", "in_channels", "hidden", "norm_steps"):
            checks.whole_number(name, getattr(self, name), 1)
        check_choice("norm", self.norm, NORMS)
        check_choice("downsample", self.downsample, DOWNSAMPLES)
        if not checks.is_real(self.bn_momentum) or not 0 <= self.bn_momentum <= 1:
            raise ConfigError(f"bn_momentum must be a number from 0 to 1 (e.g. 0.1), got {self.bn_momentum!r}")
        checks.probability("dropout", self.dropout)

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.norm != "bn_per_step":
            del d["norm_steps"]  # meaningless for other norms; left out so that their cache keys stay the same
        if self.downsample == "pool":
            del d["downsample"]  # the default; left out so that existing cache keys stay the same
        return d


DOWNSAMPLES = ("pool", "stride")


class Conv4(nn.Module):
    """Four blocks of conv3x3 -> norm -> ReLU -> maxpool2, then a linear classifier.

    On 28x28 inputs the feature maps are 28, 14, 7, 3 before each pool and 1x1 at the end, so the
    last normalisation layer still sees a 3x3 map (it works with a single example in train mode).
    With ``downsample="stride"`` each convolution has stride 2 and the pool is an identity (so the
    parameter names stay the same): the maps the normalisation layers see are 14, 7, 4 and 2 wide,
    and the last 2x2 map is averaged.
    """

    def __init__(
        self,
        n_way: int = 5,
        in_channels: int = 1,
        hidden: int = 32,
        norm: str = "bn",
        bn_momentum: float = 0.1,
        dropout: float = 0.0,
        norm_steps: int = 5,
        downsample: str = "pool",
    ) -> None:
        super().__init__()
        if downsample not in DOWNSAMPLES:
            raise ConfigError(f"unknown downsample {downsample!r}; choose one of {', '.join(DOWNSAMPLES)}")
        stride = 2 if downsample == "stride" else 1
        blocks: list[nn.Module] = []
        channels = in_channels
        for _ in range(4):
            blocks += [
                nn.Conv2d(channels, hidden, kernel_size=3, padding=1, stride=stride),
                make_norm(norm, hidden, bn_momentum, norm_steps),
                nn.ReLU(),
                nn.MaxPool2d(2) if downsample == "pool" else nn.Identity(),
            ]
            channels = hidden
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_way)

    def forward(self, x: torch.Tensor, n_context: int | None = None) -> torch.Tensor:
        """Class scores for ``x``; ``n_context`` is passed to context normalisations (see ``norms``)."""
        h = x
        for layer in self.features:
            h = layer(h, n_context) if is_context_norm(layer) else layer(h)
        h = h.mean(dim=(-2, -1))  # 1x1 on 28x28 inputs; also handles larger images
        return self.classifier(self.dropout(h))


class MLP(nn.Module):
    """The sinusoid-regression network of Finn et al. 2017: 1 -> 40 -> 40 -> 1 with ReLU."""

    def __init__(self, n_in: int = 1, hidden: int = 40, n_out: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(config: ModelConfig, seed: int | None = 0, device: torch.device | str | None = None) -> nn.Module:
    """A freshly initialised model for ``config``; the same seed gives the same initial weights."""
    if not isinstance(config, ModelConfig):
        raise ConfigError(f"config must be a ModelConfig, got {type(config).__name__}: wrap your settings as "
                          "mk.ModelConfig(**settings)")
    if seed is not None:
        checks.seed("seed", seed)
    if device is not None:
        device = checks.device("device", device)
    if seed is not None:
        torch.manual_seed(seed)
    if config.kind == "conv4":
        model: nn.Module = Conv4(
            config.n_out, config.in_channels, config.hidden, config.norm, config.bn_momentum, config.dropout,
            config.norm_steps, config.downsample,
        )
    elif config.kind == "mlp":
        model = MLP(1, config.hidden, config.n_out, config.dropout)
    else:
        raise ConfigError(f"unknown model kind {config.kind!r}; choose 'conv4' or 'mlp'")
    return model.to(device or machine.default_device())
