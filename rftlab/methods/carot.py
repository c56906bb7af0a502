"""CaRot: FLYP plus orthogonality of the visual projection and self-distillation from an EMA teacher."""
from __future__ import annotations

import copy

import torch

from ..encode import encode_image, encode_text
from ..losses import cross_frobenius, orthogonality, self_distillation
from .base import HParam
from .flyp import FLYP


def visual_projection(model) -> torch.Tensor:
    """The image tower's final projection as (width, embed_dim), whatever the tower:
    ViT ``visual.proj``, timm towers ``visual.head.proj.weight``^T, ResNet ``attnpool.c_proj``^T."""
    v = model.visual
    if isinstance(getattr(v, "proj", None), torch.Tensor):
        return v.proj
    head = getattr(v, "head", None)
    if head is not None and hasattr(head, "proj") and hasattr(head.proj, "weight"):
        return head.proj.weight.t()
    attn = getattr(v, "attnpool", None)
    if attn is not None:
        return attn.c_proj.weight.t()
    raise ValueError(f"cannot find the visual projection of {type(v).__name__}: CaRot needs one")


def text_projection(model) -> torch.Tensor:
    """The text tower's final projection as (width, embed_dim) (a Linear layer's weight transposed)."""
    p = model.text_projection
    return p.weight.t() if hasattr(p, "weight") else p


class CaRot(FLYP):
    name = "carot"
    paper_recipe = {"lr": 1e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500}  # ImageNet, ViT-B/16
    summary = "FLYP + ||Wv^T Wv - I|| + ||Wv Wt^T|| + self-distillation from an EMA teacher"
    anchor_terms = ("self_distillation",)
    hparams = {
        "lambda_oc": HParam(0.2, 0.2, 0.0, None, "weight of the orthogonality term"),
        "lambda_x": HParam(0.05, 0.05, 0.0, None, "weight of the cross-projection term"),
        "lambda_sd": HParam(1.5, 1.5, 0.0, None, "weight of self-distillation"),
        "ema_updates": HParam(50, 50, 1, None, "EMA teacher updates over the run: at step 0, then every "
                              "steps/ema_updates steps (paper: every 500 of ~25k steps)"),
        "m_start": HParam(0.05, 0.05, 0.0, 1.0, "EMA momentum at the start"),
        "m_end": HParam(0.9, 0.9, 0.0, 1.0, "EMA momentum after the ramp"),
        "m_ramp": HParam(0.2, 0.2, 0.0, 1.0, "fraction of training over which the momentum rises"),
    }

    search = {("lambda_oc", "lambda_sd"): ((0.1, 0.75), (0.2, 1.5), (0.4, 3.0))}  # both regularisers scaled together

    def setup(self, classifier, task, clip):
        super().setup(classifier, task, clip)
        self.teacher = copy.deepcopy(classifier.clip).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def momentum(self, step: int, total: int) -> float:
        ramp = self.m_ramp * total
        if ramp <= 0 or step >= ramp:
            return self.m_end
        return self.m_start + (self.m_end - self.m_start) * step / ramp

    def loss(self, classifier, images, labels, step):
        model = classifier.clip
        caps = self.captions(labels, step)  # sampled once: the student and the teacher see the same captions
        img, txt, scale, flyp = self.contrastive(classifier, images, caps)
        wv = visual_projection(model)
        oc = orthogonality(wv)
        x = cross_frobenius(wv, text_projection(model))
        terms = {"clip": flyp, "orthogonality": oc, "cross": x}
        loss = flyp + self.lambda_oc * oc + self.lambda_x * x
        if step > 0:  # no distillation at step 0
            with torch.no_grad():
                t_img = self.ranks.gather(encode_image(self.teacher, images))
                t_txt = self.ranks.gather(encode_text(self.teacher, caps))
                t_logits = self.teacher.logit_scale.exp() * t_img @ t_txt.t()
            logits = scale * img @ txt.t()
            sd = self_distillation(logits, logits.t(), t_logits, t_logits.t())
            terms["self_distillation"] = sd
            loss = loss + self.lambda_sd * sd
        terms["loss"] = loss
        return terms

    def ema_every(self, total_steps: int) -> int:
        """Steps between teacher updates: the paper's 500 of ~25k steps, scaled to the run."""
        return max(1, round(total_steps / self.ema_updates))

    def after_step(self, classifier, step, total_steps):
        super().after_step(classifier, step, total_steps)
        if step % self.ema_every(total_steps) == 0:  # step 0 included, as the official schedule
            m = self.momentum(step, total_steps)
            with torch.no_grad():
                student = classifier.clip.state_dict()
                for k, t in self.teacher.state_dict().items():
                    if t.is_floating_point():
                        t.mul_(m).add_(student[k].detach(), alpha=1 - m)
                    else:
                        t.copy_(student[k])

    def state_dict(self):
        return {"teacher": {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()}}

    def load_state_dict(self, state):
        self.teacher.load_state_dict(state["teacher"])
