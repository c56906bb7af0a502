"""The image tower of rftlab's embedded CLIP: a small CNN registered as a timm model.

open_clip wraps timm models (``vision_cfg.timm_model_name``) in its ``TimmModel``
adapter, which adds average pooling and a linear projection (``visual.head.proj``).
Registering the CNN with timm therefore lets ``open_clip.create_model`` build the whole
CLIP from a plain JSON config, with no rftlab-specific model class.
"""
from __future__ import annotations

import torch
from torch import nn

WORLD_CNN = "rftlab_world_cnn"


GROUPS = 8  # GroupNorm groups: per-image statistics, so train and eval mode compute the same function


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(GROUPS, cout), nn.ReLU(inplace=True)]


class WorldCNN(nn.Module):
    """Four stages (full, 1/2, 1/4, 1/8 resolution), 3x3 convs with GroupNorm and ReLU.

    No batch statistics (as the LayerNorm of the ViTs the papers fine-tune): a model in train
    mode computes exactly what it computes in eval mode, so fine-tuning starts from theta0."""

    def __init__(self, widths=(24, 48, 96, 192), depths=(1, 1, 2, 1), in_chans: int = 3,
                 num_classes: int = 0, global_pool: str = "avg", **_timm_kwargs):
        super().__init__()
        stages, cin = [], in_chans
        for i, (w, d) in enumerate(zip(widths, depths)):
            layers = [nn.MaxPool2d(2)] if i else []
            for _ in range(d):
                layers += _conv(cin, w)
                cin = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        self.pretrained_cfg = self.default_cfg = {"num_classes": num_classes, "pool_size": None}
        self.global_pool = global_pool
        self.fc = nn.Linear(cin, num_classes) if num_classes else nn.Identity()

    def reset_classifier(self, num_classes: int = 0, global_pool: str | None = None):
        if global_pool is not None:
            self.global_pool = global_pool
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool:
            x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False, **_):
        """Stage outputs (timm's convention): ``indices`` an int (last n) or a list."""
        n = len(self.stages)
        take = range(n - indices, n) if isinstance(indices, int) else (indices or range(n))
        take = sorted(i % n for i in take)
        inter = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in take:
                inter.append(x)
            if stop_early and i >= take[-1]:
                break
        return inter if intermediates_only else (x, inter)


def register_world_cnn() -> None:
    """Make ``timm.create_model('rftlab_world_cnn')`` work (idempotent)."""
    import timm
    from timm.models import register_model

    if WORLD_CNN in timm.list_models(WORLD_CNN):
        return

    def rftlab_world_cnn(pretrained: bool = False, **kwargs):
        if pretrained:
            raise ValueError("rftlab_world_cnn has no timm weights; load rftlab's CLIP with rftlab.load_model()")
        for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(k, None)
        return WorldCNN(**kwargs)

    rftlab_world_cnn.__name__ = WORLD_CNN
    rftlab_world_cnn.__module__ = __name__
    register_model(rftlab_world_cnn)
