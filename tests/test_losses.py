"""Each loss against values computed by hand on small tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

from rftlab import losses as L


def test_clip_loss_by_hand():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    s = 10.0
    logits = s * img @ txt.t()  # [[10, 6], [0, 8]]
    i2t = (-math.log(math.exp(10) / (math.exp(10) + math.exp(6))) - math.log(math.exp(8) / (math.exp(0) + math.exp(8)))) / 2
    t2i = (-math.log(math.exp(10) / (math.exp(10) + math.exp(0))) - math.log(math.exp(8) / (math.exp(6) + math.exp(8)))) / 2
    assert L.clip_loss(img, txt, s).item() == pytest.approx((i2t + t2i) / 2, rel=1e-5)
    assert L.clip_loss(img, txt, s).item() == pytest.approx(0.5 * (F.cross_entropy(logits, torch.arange(2))
                                                                  + F.cross_entropy(logits.t(), torch.arange(2))).item())


def test_lipsum_scale_inside_the_square():
    f = torch.tensor([[1.0, 0.0]])
    f0 = torch.tensor([[0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # M = 3
    s = 100.0
    gaps = [s * 1 - 0, 0 - s * 1, s * 0.6 - s * 0.8]
    expected = sum(g * g for g in gaps) / (2 * 3)
    assert L.lipsum_regularizer(f, f0, t, s).item() == pytest.approx(expected)
    # with the scale outside the square the value would be 1e4 times smaller
    assert L.lipsum_regularizer(f, f0, t, 1.0).item() == pytest.approx(expected / s ** 2)
    assert L.lipsum_regularizer(f, f, t, s).item() == 0


def test_context_kl_direction_and_zero_at_theta0():
    w = torch.eye(3)  # D = K = 3
    f = torch.tensor([[1.0, 0.0, 0.0]])
    f0 = torch.tensor([[0.0, 1.0, 0.0]])
    p = F.softmax(torch.tensor([1.0, 0.0, 0.0]), 0)
    p0 = F.softmax(torch.tensor([0.0, 1.0, 0.0]), 0)
    kl_p0_p = (p0 * (p0.log() - p.log())).sum()
    got = L.context_kl(f, f0, w, 1.0)
    assert got.item() == pytest.approx(kl_p0_p.item())
    f2 = torch.tensor([[0.9, 0.1, 0.0]])
    p2 = F.softmax(torch.tensor([0.9, 0.1, 0.0]), 0)
    assert L.context_kl(f2, f0, w, 1.0).item() == pytest.approx((p0 * (p0.log() - p2.log())).sum().item(), rel=1e-5)
    assert L.context_kl(f0, f0, w, 100.0).item() == pytest.approx(0.0, abs=1e-6)
    # the direction matters where the two KLs differ: theta0's distribution is the target
    reverse = (p2 * (p2.log() - p0.log())).sum().item()
    assert abs(reverse - L.context_kl(f2, f0, w, 1.0).item()) > 1e-3
    assert L.context_kl(f0, f2, w, 1.0).item() == pytest.approx(reverse, rel=1e-5)


def test_orthogonality_and_cross_frobenius_are_not_squared():
    proj = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # (width 3, embed 2)
    # P^T P = diag(4, 1); minus I = diag(3, 0); Frobenius = 3 (squared would be 9)
    assert L.orthogonality(proj).item() == pytest.approx(3.0)
    q, _ = torch.linalg.qr(torch.randn(5, 3))
    assert L.orthogonality(q).item() == pytest.approx(0.0, abs=1e-5)
    wt = torch.tensor([[0.0, 2.0], [1.0, 0.0]])  # text (width 2, embed 2)
    # W_v W_t^T = [[0, 2], [2, 0], [0, 0]] -> Frobenius sqrt(8)
    assert L.cross_frobenius(proj, wt).item() == pytest.approx(math.sqrt(8.0))


def test_self_distillation_sums_both_directions():
    li = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    lt = li.t()
    ti = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    tt = ti.t()

    def kl(a, b):  # soft-label cross-entropy minus the target's entropy
        p = F.softmax(b, 1)
        return ((p * p.log()).sum(1) - (p * F.log_softmax(a, 1)).sum(1)).mean().item()
    expected = kl(li, ti) + kl(lt, tt)
    assert L.self_distillation(li, lt, ti, tt).item() == pytest.approx(expected)
    assert expected > kl(li, ti) > 0  # a sum, not an average of the two
    assert L.self_distillation(ti, tt, ti, tt).item() == pytest.approx(0.0, abs=1e-7)  # student = teacher


def test_self_distillation_has_the_soft_cross_entropys_gradient():
    li = torch.tensor([[2.0, 0.0], [0.5, 1.0]], requires_grad=True)
    ti = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    L.self_distillation(li, li.t(), ti, ti.t()).backward()
    grad = li.grad.clone()
    li.grad = None
    ce = -(F.softmax(ti, 1) * F.log_softmax(li, 1)).sum(1).mean() - (F.softmax(ti.t(), 1) * F.log_softmax(li.t(), 1)).sum(1).mean()
    ce.backward()
    assert torch.allclose(grad, li.grad)


def test_spurious_alignment_kl_masks_same_label_entries():
    labels = torch.tensor([0, 0, 1])
    student = torch.tensor([[5.0, 1.0, 2.0], [0.0, 9.0, 1.0], [3.0, 0.0, 7.0]])
    teacher = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 4.0], [1.0, 2.0, 0.0]])
    # rows 0 and 1: only column 2 survives -> both distributions are one-hot there -> KL 0
    # row 2: columns 0 and 1 survive
    p = F.softmax(torch.tensor([1.0, 2.0]), 0)
    q = F.softmax(torch.tensor([3.0, 0.0]), 0)
    expected = (p * (p.log() - q.log())).sum().item() / 3
    assert L.spurious_alignment_kl(student, teacher, labels).item() == pytest.approx(expected, rel=1e-5)
    # the direction is KL(teacher || student)
    wrong = (q * (q.log() - p.log())).sum().item() / 3
    assert L.spurious_alignment_kl(teacher, student, labels).item() == pytest.approx(wrong, rel=1e-5)
    assert abs(wrong - expected) > 1e-3   # so the two directions are told apart
    # unmasked diagonal would change the value
    assert L.spurious_alignment_kl(student, teacher, torch.tensor([0, 1, 2])).item() != pytest.approx(expected)


def test_l2sp_by_hand():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0])}
    b = {"w": torch.tensor([0.0, 0.0]), "b": torch.tensor([1.0])}
    assert L.l2sp(a, b).item() == pytest.approx(0.5 * (1 + 4 + 4))
    assert L.l2sp(list(a.values()), list(b.values())).item() == pytest.approx(4.5)
    with pytest.raises(ValueError):
        L.l2sp(a, {"w": b["w"]})
