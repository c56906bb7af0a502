import pytest
import torch

from rftlab.metrics import accuracy, ece, nll


def test_ece_of_a_calibrated_predictor_is_near_zero():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    conf = 0.5 + 0.5 * torch.rand(n, generator=g)
    right = torch.rand(n, generator=g) < conf  # correct with probability = confidence
    labels = torch.where(right, torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long))
    probs = torch.stack([conf, 1 - conf], 1)
    assert ece(probs, labels) < 0.01


def test_ece_by_hand():
    # two bins used (n_bins=2): [0.9 conf, right], [0.6 conf, wrong], [0.8 conf, right], [0.3 of 3 classes...]
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.2, 0.8]])
    labels = torch.tensor([0, 1, 0, 1])
    # all confidences > 0.5: one bin (0.5, 1]; acc 3/4, mean conf (0.9+0.6+0.8+0.8)/4 = 0.775
    assert ece(probs, labels, n_bins=2) == pytest.approx(abs(0.75 - 0.775))
    # 10 bins: (0.8,0.9]: 0.9 right; (0.5,0.6]: 0.6 wrong; (0.7,0.8]: 0.8 right, 0.8 right
    expected = (abs(1 - 0.9) + abs(0 - 0.6) + 2 * abs(1 - 0.8)) / 4
    assert ece(probs, labels, n_bins=10) == pytest.approx(expected)


def test_ece_pools_rather_than_averaging_batches():
    probs = torch.tensor([[0.9, 0.1]] * 9 + [[0.6, 0.4]])
    labels = torch.tensor([0] * 9 + [1])
    pooled = ece(probs, labels, n_bins=15)
    a, b = [0, 9], list(range(1, 9))
    per_batch = (ece(probs[a], labels[a]) + ece(probs[b], labels[b])) / 2
    assert pooled == pytest.approx(0.15) and per_batch == pytest.approx(0.225)


def test_accuracy_and_nll():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    assert accuracy(logits, torch.tensor([0, 0])) == 0.5
    assert nll(logits, torch.tensor([0, 1])) == pytest.approx(torch.log1p(torch.exp(torch.tensor(-2.0))).item())
    with pytest.raises(ValueError):
        ece(torch.ones(3, 2), torch.ones(2, dtype=torch.long))
