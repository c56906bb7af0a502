"""Pretraining recipe of rftlab's embedded CLIP on the procedural world.

Three stages, all on a fresh stream of uniformly sampled world images and captions
(every factor independent of every other, so the zero-shot model prefers no spurious cue):

1. ``supervised``: the image tower (with its projection) learns the world's factors from
   linear read-outs (a warm start; CNNs learn shape slowly from captions alone).
2. ``align``: the image trunk is locked (LiT) and the text tower, the image projection and
   the temperature learn to match captions with the contrastive loss.
3. ``joint``: both towers trained with the contrastive loss: the result is a plain CLIP.
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .encode import encode_image, encode_text
from .losses import clip_loss
from .train import lr_factor
from .models.factory import DEFAULT_WEIGHTS, ClipModel, create_world_model, save_checkpoint
from .world import SPACE, WORLD_TEMPLATES, factor_prompts, sample_world
from .world.sample import PRETRAIN_MIX, PRETRAIN_SCALE, PretrainMix
from .zeroshot import prompt_head, zeroshot_head

STAGES = ("supervised", "align", "joint")


@torch.no_grad()
def world_zeroshot_report(clip: ClipModel, n_per_style: int = 250, seed: int = 10_000) -> dict:
    """Zero-shot accuracy of shape (per style), background and style on a fixed world sample
    in the standard view (objects at scales 0.3 to 0.62 of the half-width)."""
    model = clip.model
    was_training = model.training
    model.eval()
    report = {}
    feats, facts = [], {k: [] for k in ("shape", "background", "style")}
    for s, style in enumerate(SPACE.style):
        images, f, _ = sample_world(n_per_style, seed=seed + s, style=s, with_captions=False)
        feats.append(encode_image(model, clip.preprocess(images)))
        for k in facts:
            facts[k].append(f[k])
    x = torch.cat(feats)
    y = {k: torch.cat(v) for k, v in facts.items()}
    head = zeroshot_head(model, clip.tokenizer, SPACE.shape, WORLD_TEMPLATES)
    pred = (x @ head).argmax(1)
    for s, style in enumerate(SPACE.style):
        m = y["style"] == s
        report[f"shape_acc_{style}"] = (pred[m] == y["shape"][m]).float().mean().item()
    for factor in ("background", "style"):
        h = prompt_head(model, clip.tokenizer, factor_prompts(factor))
        report[f"{factor}_acc"] = ((x @ h).argmax(1) == y[factor]).float().mean().item()
    model.train(was_training)
    return report


def pretrain(steps=(1200, 600, 2400), batch_size: int = 256, lr=(2e-3, 1e-3, 5e-4),
             seed: int = 0, out: str | Path = DEFAULT_WEIGHTS, eval_every: int = 200,
             log=print, command: str | None = None, mix: PretrainMix | None = None) -> ClipModel:
    """Pretrain a world CLIP from scratch and write it to ``out`` (with a ``.record.json`` beside
    it). ``mix``: what the image-caption stream draws (:class:`~rftlab.world.sample.PretrainMix`;
    default :data:`~rftlab.world.sample.PRETRAIN_MIX`, the shipped model's)."""
    mix = PRETRAIN_MIX if mix is None else mix
    torch.manual_seed(seed)
    clip = create_world_model()
    model = clip.model
    heads = nn.ModuleDict({k: nn.Linear(model.visual.head.proj.out_features, len(SPACE.names(k)))
                           for k in ("shape", "color", "background", "style")})
    t_start = time.time()
    history = []
    step_global = 0
    for stage, n_steps, base_lr in zip(STAGES, steps, lr):
        if n_steps <= 0:
            continue
        model.train()
        if stage == "supervised":
            params = list(model.visual.parameters()) + list(heads.parameters())
        elif stage == "align":
            model.visual.trunk.eval()  # locked trunk, BatchNorm statistics kept
            params = [p for n, p in model.named_parameters() if not n.startswith("visual.trunk.")]
        else:
            params = list(model.parameters())
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=base_lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, n_steps, max(1, n_steps // 20)))
        for step in range(n_steps):
            images, f, caps = sample_world(batch_size, seed=seed * 1_000_003 + step_global * 7,
                                           with_captions=stage != "supervised", scale=PRETRAIN_SCALE,
                                           mix=mix)
            x = clip.preprocess(images)
            if stage == "supervised":
                z = model.visual(x)
                loss = sum(F.cross_entropy(h(z), _targets(f, k, len(SPACE.names(k)))) for k, h in heads.items())
            else:
                img = encode_image(model, x)
                txt = encode_text(model, clip.tokenizer(caps))
                loss = clip_loss(img, txt, model.logit_scale.exp())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step_global += 1
            if (step + 1) % eval_every == 0 or step + 1 == n_steps:
                rec = {"stage": stage, "step": step + 1, "loss": round(loss.item(), 4),
                       "minutes": round((time.time() - t_start) / 60, 2)}
                if stage != "supervised":
                    rec.update({k: round(v, 4) for k, v in world_zeroshot_report(clip).items()})
                    rec["logit_scale"] = round(model.logit_scale.exp().item(), 2)
                history.append(rec)
                log(json.dumps(rec))
                if stage != "supervised":
                    _save(clip, out, steps, batch_size, lr, seed, t_start, history, command, mix)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    _save(clip, out, steps, batch_size, lr, seed, t_start, history, command, mix)
    return clip


def _targets(f: dict, factor: str, k: int) -> torch.Tensor:
    """The supervised stage's targets: the factor's index, or, for the shape and colour of an image
    that shows a second object, half on each object's value (pretraining does not know which of the
    two a downstream label would name, as its captions name either)."""
    if factor not in ("shape", "color") or "second_shape" not in f:
        return f[factor]
    target = F.one_hot(f[factor], k).float()
    two = f["second_shape"] >= 0
    if two.any():
        other = F.one_hot(f[f"second_{factor}"][two], k).float()
        target[two] = 0.5 * target[two] + 0.5 * other
    return target


def _save(clip, out, steps, batch_size, lr, seed, t_start, history, command, mix):
    record = {
        "command": command or " ".join(sys.argv),
        "recipe": {"stages": list(STAGES), "scale": list(PRETRAIN_SCALE), "steps": list(steps), "batch_size": batch_size,
                   "lr": list(lr), "seed": seed, "mix": mix.to_dict(), "optimizer": "AdamW wd 0.05, warm-up 5% then cosine, clip 1.0"},
        "wall_minutes": round((time.time() - t_start) / 60, 2),
        "torch": str(torch.__version__), "threads": torch.get_num_threads(), "machine": platform.machine(),
        "history": history,
        "final": history[-1] if history else None,
    }
    save_checkpoint(clip, out, record=record)
    Path(out).with_suffix(".record.json").write_text(json.dumps(record, indent=1))
