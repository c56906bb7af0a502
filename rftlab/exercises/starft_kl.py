"""Exercise: StarFT's masked KL, checked against :func:`rftlab.losses.spurious_alignment_kl`."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import losses
from .grading import (Case, CheckResult, knob_mistakes, moved_features, run_check, scalar_compare, show_scalar,
                      unit_features)


def _starft_variant(mask: str = "same", direction: str = "teacher_student", reduction: str = "mean"):
    def fn(logits, teacher_logits, labels):
        b = len(labels)
        if mask in ("same", "same_zero"):
            m = labels.view(-1, 1) == labels.view(1, -1)
        elif mask == "diag":
            m = torch.eye(b, dtype=torch.bool)
        else:
            m = torch.zeros(b, b, dtype=torch.bool)
        fill = 0.0 if mask == "same_zero" else -1e8
        logq = F.log_softmax(logits.masked_fill(m, fill), -1)
        logp = F.log_softmax(teacher_logits.masked_fill(m, fill), -1)
        if direction == "teacher_student":
            kl = logp.exp() * (logp - logq)
        else:
            kl = logq.exp() * (logq - logp)
        if mask != "same_zero":
            kl = kl.masked_fill(m, 0.0)
        if reduction == "mean":
            return kl.sum(-1).mean()
        if reduction == "sum":
            return kl.sum()
        return kl.sum() / kl.numel()
    return fn


_STARFT_KNOBS = {
    "mask": [("same", None, ""),
             ("diag", "diagonal_only",
              "you masked only the diagonal. StarFT masks every caption whose label equals the image's "
              "(y_i = y_j), the diagonal included: build the mask as labels[:, None] == labels[None, :]. "
              "Same-class captions are what the contrastive loss pulls the image towards; the KL should only "
              "keep the zero-shot model's view of the *other* classes' spurious captions."),
             ("none", "unmasked",
              "nothing is masked. StarFT sets every entry with y_i = y_j (the diagonal included) to -1e8 in both "
              "the student's and the teacher's logits before the softmax, so the KL only compares the other "
              "classes' spuriosity-injected captions."),
             ("same_zero", "masked_to_zero",
              "you set the masked logits to 0, but a logit of 0 still gets probability mass after the softmax. "
              "Fill them with -1e8 (masked_fill(mask, -1e8)) so they drop out.")],
    "direction": [("teacher_student", None, ""),
                  ("student_teacher", "reversed_kl",
                   "the KL is the wrong way round: you computed KL(student || teacher). The zero-shot teacher is "
                   "the target: KL(p_teacher || p_student) = sum_j p_teacher * (log p_teacher - log p_student).")],
    "reduction": [("mean", None, ""),
                  ("sum", "summed_over_batch",
                   "you summed over the batch; StarFT averages over the B images: (1/B) sum_i KL_i."),
                  ("all", "mean_over_entries",
                   "you averaged over all B x B entries (F.kl_div's reduction='mean' does this); sum over the "
                   "captions j, then average over the images i (reduction='batchmean').")],
}


def _starft_cases() -> list[Case]:
    cases = []
    for seed, (b, classes, d, noise) in enumerate(((8, 3, 16, 0.4), (12, 2, 32, 0.6), (6, 6, 16, 0.3),
                                                   (10, 4, 24, 0.8))):
        g = torch.Generator().manual_seed(200 + seed)
        labels = torch.arange(b) % classes
        labels = labels[torch.randperm(b, generator=g)]
        img0, txt0 = unit_features(g, b, d), unit_features(g, b, d)
        img, txt = moved_features(g, img0, noise), moved_features(g, txt0, noise)
        s0 = 100.0
        cases.append(Case(f"B = {b} images, {classes} classes, s0 = {s0:g}",
                           (s0 * img @ txt.t(), s0 * img0 @ txt0.t(), labels)))
    g = torch.Generator().manual_seed(299)
    img0, txt0 = unit_features(g, 4, 8), unit_features(g, 4, 8)
    cases.append(Case("B = 4, a single-class batch: every entry masked",
                       (100 * moved_features(g, img0, 0.5) @ txt0.t(), 100 * img0 @ txt0.t(), torch.zeros(4, dtype=torch.long))))
    return cases


def check_starft_kl(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(logits, teacher_logits, labels) -> scalar`` against
    :func:`rftlab.losses.spurious_alignment_kl` (StarFT's masked KL)."""
    return run_check(
        "StarFT masked KL", fn, losses.spurious_alignment_kl, _starft_cases(),
        ["logits", "teacher_logits", "labels"],
        knob_mistakes(_starft_variant, _STARFT_KNOBS, "masked KL"), scalar_compare(), show_scalar,
        "your masked KL matches rftlab.losses.spurious_alignment_kl on 5 cases (2 to 6 classes, all "
        "labels distinct, a single-class batch) and keeps the gradient.",
        grad_arg=0,
        non_finite_hint="Masking with -inf gives 0 * (-inf - (-inf)) = nan in the sum: mask with -1e8 as StarFT does "
                        "(or zero the masked terms before summing), and use F.log_softmax rather than "
                        "softmax(...).log().",
        quiet=quiet)
