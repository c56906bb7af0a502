"""Pure loss functions: tensors in, a scalar tensor out.

Conventions (a contract outside scripts rely on): features are already L2-normalised;
``logit_scale`` is the multiplier (e.g. 100.0), not its logarithm.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale) -> torch.Tensor:
    """Symmetric contrastive loss (CLIP, FLYP): mean of image->text and text->image CE,
    matching pairs on the diagonal."""
    if image_features.shape != text_features.shape:
        raise ValueError(f"image and text features must pair up one to one; got shapes "
                         f"{tuple(image_features.shape)} and {tuple(text_features.shape)}")
    logits = logit_scale * image_features @ text_features.t()
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def lipsum_regularizer(features: torch.Tensor, features0: torch.Tensor, text_features: torch.Tensor,
                       logit_scale) -> torch.Tensor:
    """Lipsum-FT's energy gap on M texts: mean over the batch of
    sum_m (s*<phi(x), psi(t_m)> - s*<phi0(x), psi(t_m)>)^2 / (2M). The scale sits inside the square."""
    m = text_features.shape[0]
    gap = logit_scale * (features - features0) @ text_features.t()
    return gap.pow(2).sum(1).div(2 * m).mean()


def context_kl(features: torch.Tensor, features0: torch.Tensor, context_weights: torch.Tensor,
               logit_scale) -> torch.Tensor:
    """CAR-FT: KL(p0 || p) between context distributions softmax(s * f @ W_ctx), W_ctx (D, K);
    the zero-shot model's distribution p0 is the target. Averaged over the batch."""
    logp = F.log_softmax(logit_scale * features @ context_weights, dim=-1)
    logp0 = F.log_softmax(logit_scale * features0 @ context_weights, dim=-1)
    return (logp0.exp() * (logp0 - logp)).sum(-1).mean()


def orthogonality(proj: torch.Tensor) -> torch.Tensor:
    """CaRot: ||P^T P - I||_F (not squared), P the visual projection (width, embed_dim)."""
    gram = proj.t() @ proj
    return torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0], device=proj.device, dtype=proj.dtype))


def cross_frobenius(visual_proj: torch.Tensor, text_proj: torch.Tensor) -> torch.Tensor:
    """CaRot: ||W_v W_t^T||_F (not squared); both projections map into the shared embed_dim."""
    return torch.linalg.matrix_norm(visual_proj @ text_proj.t())


def _soft_ce(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Soft-label cross-entropy minus the target's entropy, i.e. KL(target || prediction): the
    entropy does not depend on the prediction, so the gradients are the cross-entropy's, and the
    value is 0 when the prediction equals the target."""
    logp = F.log_softmax(target_logits, dim=-1)
    return (logp.exp() * (logp - F.log_softmax(logits, dim=-1))).sum(-1).mean()


def self_distillation(logits_per_image: torch.Tensor, logits_per_text: torch.Tensor,
                      teacher_logits_per_image: torch.Tensor, teacher_logits_per_text: torch.Tensor) -> torch.Tensor:
    """CaRot: soft-label cross-entropy to the EMA teacher, image->text PLUS text->image
    (a sum, not an average), each averaged over rows. Reported without the teacher's entropy (a
    constant: same gradients), so it reads 0 when the student equals the teacher."""
    return (_soft_ce(logits_per_image, teacher_logits_per_image.detach())
            + _soft_ce(logits_per_text, teacher_logits_per_text.detach()))


def spurious_alignment_kl(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """StarFT: KL(teacher || student) over each image's logits against the batch's
    spuriosity-injected captions (B x B); entries whose labels are equal (the diagonal too) are
    masked to -1e8 in both before the softmax. Averaged over the batch."""
    same = labels.view(-1, 1) == labels.view(1, -1)
    s = logits.masked_fill(same, -1e8)
    t = teacher_logits.detach().masked_fill(same, -1e8)
    logq, logp = F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1)
    p = logp.exp()
    return (p * (logp - logq)).masked_fill(same, 0.0).sum(-1).mean()


def l2sp(params, params0) -> torch.Tensor:
    """L2-SP: 0.5 * sum of squared differences over matching tensors (dicts by name, or sequences)."""
    if isinstance(params, dict):
        if params.keys() != params0.keys():
            raise ValueError("l2sp: the two parameter dicts name different tensors")
        pairs = [(params[k], params0[k]) for k in params]
    else:
        pairs = list(zip(params, params0, strict=True))
    if not pairs:
        raise ValueError("l2sp needs at least one tensor")
    return 0.5 * sum((a - b.detach()).pow(2).sum() for a, b in pairs)
