"""Model Stock, LiNeS and SPD: our functions against plain restatements of each release's rule
(naver-ai/model-stock's notebook as copied by its users, wang-kee/LiNeS src/eval/eval.py
LiNeS_scaling, GT-RIPL/Selective-Projection-Decay adamSPD.py), and the guarantees every method keeps."""
import math

import pytest
import torch

from rftlab.merging import image_blocks, lines, model_stock, model_stock_ratio
from rftlab.optim import AdamSPD, selective_projection_decay


def _sd(seed, shapes):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


SHAPES = {"head": (4, 3), "clip.visual.conv1.weight": (2, 3), "clip.visual.transformer.resblocks.0.w": (5,),
          "clip.visual.transformer.resblocks.1.w": (5,), "clip.visual.transformer.resblocks.2.w": (3, 2),
          "clip.visual.transformer.resblocks.3.w": (2,), "clip.visual.proj": (3, 3)}


# ------------------------------------------------------------------ Model Stock
def _release_model_stock(w0, w1, w2):
    """Two runs, key by key, as the release's notebook: cos from the flattened updates with 1e-8,
    clamped; t = 2 cos / (cos + 1 + 1e-8); t * (w1 + w2) / 2 + (1 - t) * w0."""
    out = {}
    for k in w0:
        a = [float(x) for x in (w1[k] - w0[k]).flatten()]
        b = [float(x) for x in (w2[k] - w0[k]).flatten()]
        dot = sum(x * y for x, y in zip(a, b))
        cos = dot / (math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)) + 1e-8)
        cos = max(-1.0, min(1.0, cos))
        t = 2 * cos / ((2 - 1) * cos + 1 + 1e-8)
        out[k] = t * (w1[k] + w2[k]) / 2 + (1 - t) * w0[k]
    return out


def test_model_stock_matches_the_release_rule_tensor_by_tensor():
    w0 = _sd(0, SHAPES)
    w1 = {k: v + 0.3 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) for k, v in w0.items()}
    w2 = {k: v + 0.3 * torch.randn(v.shape, generator=torch.Generator().manual_seed(2)) + 0.2 * (w1[k] - v)
          for k, v in w0.items()}
    ours, ref = model_stock(w0, [w1, w2]), _release_model_stock(w0, w1, w2)
    for k in w0:
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-5, atol=1e-6)


def test_model_stock_ratio_is_one_when_runs_agree_and_zero_when_orthogonal():
    assert abs(float(model_stock_ratio(1.0, 2)) - 1.0) < 1e-7 and abs(float(model_stock_ratio(0.0, 2))) < 1e-12
    assert float(model_stock_ratio(0.5, 2)) == pytest.approx(2 * 0.5 / 1.5)
    assert float(model_stock_ratio(0.5, 3)) == pytest.approx(3 * 0.5 / 2.0)


def test_model_stock_of_two_equal_runs_is_that_run_and_untouched_tensors_stay_theta0():
    w0 = _sd(0, SHAPES)
    w1 = {k: v + 0.1 for k, v in w0.items()}
    w1["clip.visual.proj"] = w0["clip.visual.proj"].clone()   # a tensor no run changed
    merged = model_stock(w0, [w1, {k: v.clone() for k, v in w1.items()}])
    for k in w0:
        torch.testing.assert_close(merged[k], w1[k], rtol=0, atol=1e-6)
    assert torch.equal(merged["clip.visual.proj"], w0["clip.visual.proj"])
    avg = model_stock(w0, [w1, _sd(5, SHAPES)], ratio=1.0)   # the ablation: the plain average
    torch.testing.assert_close(avg["head"], (w1["head"] + _sd(5, SHAPES)["head"]) / 2)


def test_model_stock_refuses_one_run_and_foreign_state_dicts():
    w0 = _sd(0, SHAPES)
    with pytest.raises(ValueError, match="at least two"):
        model_stock(w0, [w0])
    with pytest.raises(ValueError, match="different architectures"):
        model_stock(w0, [w0, {"x": torch.zeros(1)}])


# ------------------------------------------------------------------ LiNeS
def _release_lines(w0, w1, alpha, beta, num_blocks):
    """The release's LiNeS_scaling: the first '.{i}.' found in a key gives its block i; scale
    alpha + beta * i / (num_blocks - 1); keys in no block get alpha; theta0 + scale * tau."""
    out = {}
    for k in w0:
        scale = alpha
        for i in range(num_blocks):
            if f".{i}." in k:
                scale = alpha + beta * i / (num_blocks - 1)
                break
        out[k] = w0[k] + scale * (w1[k] - w0[k])
    return out


def test_lines_matches_the_release_rule_on_vit_blocks():
    w0, w1 = _sd(0, SHAPES), _sd(1, SHAPES)
    ours = lines(w0, w1, alpha=0.3, beta=0.5, head_keys=())
    ref = _release_lines(w0, w1, 0.3, 0.5, 4)
    for k in w0:
        torch.testing.assert_close(ours[k], ref[k])
    single = lines(w0, w1, alpha=0.2)   # beta = 1 - alpha: the deepest block and the head keep their update
    assert torch.equal(single["clip.visual.transformer.resblocks.3.w"], w1["clip.visual.transformer.resblocks.3.w"])
    assert torch.equal(single["head"], w1["head"])
    torch.testing.assert_close(single["clip.visual.conv1.weight"],
                               w0["clip.visual.conv1.weight"] + 0.2 * (w1["clip.visual.conv1.weight"] - w0["clip.visual.conv1.weight"]))


def test_lines_with_zero_scaling_is_theta0_exactly_and_with_one_the_fine_tuned_run():
    w0, w1 = _sd(0, SHAPES), _sd(1, SHAPES)
    assert all(torch.equal(v, w0[k]) for k, v in lines(w0, w1, 0.0, 0.0).items())
    assert all(torch.equal(v, w1[k]) for k, v in lines(w0, w1, 1.0, 0.0).items())


def test_the_world_cnn_has_one_block_per_convolution():
    import rftlab
    clip = rftlab.load_model()
    sd = {f"clip.{k}": v for k, v in clip.model.state_dict().items()}
    index, n = image_blocks(sd)
    assert n == 5
    assert index["clip.visual.trunk.stages.0.1.weight"] == 0 and index["clip.visual.trunk.stages.2.4.weight"] == 3
    assert index["clip.visual.trunk.stages.3.2.bias"] == 4 and "clip.visual.head.proj.weight" not in index
    with pytest.raises(ValueError, match="numbered blocks"):
        image_blocks({"visual.fc.weight": torch.zeros(2, 2)})


# ------------------------------------------------------------------ SPD
def _release_adam_spd(p, pre, grads, lr, lam, betas=(0.9, 0.999), eps=1e-8):
    """The release's AdamSPD step by step, for one tensor: Adam without decay, then if
    -sum(g * (p_prev - pre)) < 0: r = hardtanh((|p_new - pre| - |p_prev - pre|) / |p_new - pre|, 0, 1),
    p = p_new - lam * r * (p_new - pre)."""
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        denom = v.sqrt() / math.sqrt(1 - betas[1] ** t) + eps
        new = p - lr / (1 - betas[0] ** t) * m / denom
        if float(-(g * (p - pre)).sum()) < 0:
            r = min(1.0, max(0.0, float(((new - pre).norm() - (p - pre).norm()) / (new - pre).norm())))
            new = new - lam * r * (new - pre)
        p = new
    return p


def test_adam_spd_matches_the_release_step():
    g = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(6, generator=g))
    anchor = w.detach().clone()
    grads = [torch.randn(6, generator=g) for _ in range(4)]
    grads[2] = -grads[2]
    opt = AdamSPD([w], lr=0.1, lam=0.7)
    for gr in grads:
        w.grad = gr.clone()
        opt.step()
    torch.testing.assert_close(w.detach(), _release_adam_spd(anchor, anchor, grads, 0.1, 0.7), rtol=1e-5, atol=1e-6)


def test_spd_does_nothing_at_theta0_and_decays_only_moves_away():
    anchor, grad = torch.zeros(3), torch.ones(3)
    after = torch.tensor([-0.1, -0.1, -0.1])
    assert torch.equal(selective_projection_decay(anchor, after, grad, anchor, 1.0), after)   # at theta0: c = 0
    before = torch.tensor([0.5, 0.5, 0.5])
    away = torch.tensor([0.6, 0.6, 0.6])   # gradient along the deviation (c < 0), the step grew it by 1/6
    torch.testing.assert_close(selective_projection_decay(before, away, grad, anchor, 1.0), away - (1 / 6) * away)
    assert torch.equal(selective_projection_decay(before, away, -grad, anchor, 1.0), away)   # c > 0: no decay
    w = torch.nn.Parameter(torch.randn(5))
    w_adam = torch.nn.Parameter(w.detach().clone())
    w.grad, w_adam.grad = torch.ones(5), torch.ones(5)
    AdamSPD([w], lr=0.01, lam=5.0).step()
    torch.optim.Adam([w_adam], lr=0.01).step()
    assert torch.equal(w.detach(), w_adam.detach())   # the first step from the anchor is Adam's


def test_adam_spd_refuses_bad_input():
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="lam must be >= 0"):
        AdamSPD([w], lam=-1)
    with pytest.raises(ValueError, match="one anchor per parameter"):
        AdamSPD([w], anchors=[torch.zeros(3)])


def test_spd_in_the_loop_takes_its_first_step_as_plain_adam_and_then_pulls_back(clip, small_shift):
    """At theta0 SPD's decay is 0 (its pull measures 0 there); later steps differ from lam = 0."""
    import copy

    import rftlab

    def trained(lam, steps):
        c = copy.copy(clip)
        c.model = copy.deepcopy(clip.model)
        cfg = rftlab.TrainConfig(steps=steps, batch_size=16, lr=3e-3, warmup=0, eval_every=0, progress=False)
        tr = rftlab.Trainer("spd", c, small_shift, cfg, lam=lam)
        assert isinstance(tr.optimizer, AdamSPD) and tr.optimizer.lam == lam
        for _ in range(steps):
            tr.step()
        return tr.classifier.state_dict()
    one = [trained(lam, 1) for lam in (0.0, 1.0)]
    assert all(torch.equal(one[0][k], one[1][k]) for k in one[0])
    many = [trained(lam, 4) for lam in (0.0, 1.0)]
    assert any(not torch.equal(many[0][k], many[1][k]) for k in many[0])
