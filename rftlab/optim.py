"""Optimisers a method can ask the training loop for (``Method.build_optimizer``).

:class:`AdamSPD` is selective projection decay (Tian et al., NeurIPS 2024; release:
GT-RIPL/Selective-Projection-Decay, ``adamSPD.py``): a plain Adam step without weight decay, then,
tensor by tensor, a pull back towards the anchor (the pretrained weights) only where the step's
gradient points away from the anchor, by the fraction the step grew the tensor's distance to it.
The rule itself is the pure function :func:`selective_projection_decay`.
"""
from __future__ import annotations

import torch


def selective_projection_decay(before: torch.Tensor, after: torch.Tensor, grad: torch.Tensor,
                               anchor: torch.Tensor, lam: float) -> torch.Tensor:
    """One tensor's SPD correction of an optimiser step ``before -> after``:

    * the condition: ``c = -<grad, before - anchor>``; the decay applies only when ``c < 0``
      (the gradient has a positive component along the tensor's deviation from the anchor);
    * the ratio: ``r = clip((|after - anchor| - |before - anchor|) / |after - anchor|, 0, 1)``, the
      share of the new deviation that this step added;
    * the decay: ``after - lam * r * (after - anchor)`` (``lam`` is not scaled by the learning rate).

    Branch-free (no value is read back to the host). At the anchor (``before == anchor``) the
    condition is 0, so the step is returned unchanged."""
    c = -(grad * (before - anchor)).sum()
    dev_new = after - anchor
    norm_new, norm_old = dev_new.norm(), (before - anchor).norm()
    r = torch.where(norm_new > 0, (norm_new - norm_old) / norm_new.clamp_min(torch.finfo(norm_new.dtype).tiny),
                    torch.zeros_like(norm_new)).clamp(0.0, 1.0)
    return after - (lam * r * (c < 0).to(after.dtype)) * dev_new


class AdamSPD(torch.optim.Adam):
    """Adam (no weight decay) followed by :func:`selective_projection_decay` of every tensor towards
    its anchor. ``anchors``: one tensor per parameter, in the order of ``params`` (default: copies
    of the parameters as they are now, the release's ``pre``)."""

    def __init__(self, params, anchors=None, lr: float = 1e-3, lam: float = 0.0, betas=(0.9, 0.999),
                 eps: float = 1e-8):
        params = list(params)
        if params and isinstance(params[0], dict):
            raise ValueError("AdamSPD takes a list of parameters (one group), as the training loop gives")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=0.0)
        if lam < 0:
            raise ValueError(f"the decay strength lam must be >= 0; got {lam}")
        self.lam = float(lam)
        anchors = [p.detach().clone() for p in params] if anchors is None else \
            [a.detach().to(p.device) for a, p in zip(anchors, params)]   # beside their parameters, once
        if len(anchors) != len(params) or any(a.shape != p.shape for a, p in zip(anchors, params)):
            raise ValueError("AdamSPD needs one anchor per parameter, of the parameter's shape")
        self.anchors = anchors

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self.param_groups[0]["params"]
        before = [p.detach().clone() if p.grad is not None else None for p in params]
        super().step()
        for p, b, a in zip(params, before, self.anchors):
            if b is not None:
                p.copy_(selective_projection_decay(b, p, p.grad, a, self.lam))
        return loss
