"""The tutorial checkers: references pass, classic mistakes get their diagnosis, unanswered
exercises say so, anything else gets a mismatch with a failing case, and nothing raises."""
import pytest
import torch
import torch.nn.functional as F

import rftlab
from rftlab import exercises as E
from rftlab import losses
from rftlab.exercises import context_kl, ece, grading, lipsum, orthogonality, starft_kl

KNOBBED = [
    (E.check_starft_kl, starft_kl._starft_variant, starft_kl._STARFT_KNOBS),
    (E.check_context_kl, context_kl._context_variant, context_kl._CONTEXT_KNOBS),
    (E.check_lipsum, lipsum._lipsum_variant, lipsum._LIPSUM_KNOBS),
    (E.check_ece, ece._ece_variant, ece._ECE_KNOBS),
    (E.check_orthogonality, orthogonality._ortho_variant, orthogonality._ORTHO_KNOBS),
]
REFERENCES = [
    (E.check_wise_ft, rftlab.wise_ft),
    (E.check_starft_kl, losses.spurious_alignment_kl),
    (E.check_context_kl, losses.context_kl),
    (E.check_lipsum, losses.lipsum_regularizer),
    (E.check_ece, E.pooled_ece),
    (E.check_orthogonality, losses.orthogonality),
]
CHECKERS = [c for c, _ in REFERENCES]


@pytest.mark.parametrize("check,reference", REFERENCES, ids=lambda x: getattr(x, "__name__", ""))
def test_reference_passes(check, reference, capsys):
    res = check(reference)
    assert res.passed and res.status == "passed" and res.diagnosis is None
    assert "PASSED" in capsys.readouterr().out
    assert res.implementation(verbose=False) is reference


@pytest.mark.parametrize("check,variant,knobs", KNOBBED, ids=lambda x: getattr(x, "__name__", ""))
def test_each_single_mistake_gets_its_own_diagnosis(check, variant, knobs):
    assert check(variant(), quiet=True).passed  # the variant family's default is the reference
    for name, options in knobs.items():
        for value, key, message in options[1:]:
            res = check(variant(**{name: value}), quiet=True)
            assert res.status == "mistake" and res.diagnosis == key, (name, value, res)
            assert message in res.message


@pytest.mark.parametrize("check,variant,knobs", KNOBBED, ids=lambda x: getattr(x, "__name__", ""))
def test_combined_mistakes_are_diagnosed_consistently(check, variant, knobs):
    """Every combination of wrong settings gets a diagnosis (never a bare mismatch), and every
    diagnosed setting is one the implementation really has, or one that computes the same values."""
    cases = {E.check_starft_kl: starft_kl._starft_cases, E.check_context_kl: context_kl._context_cases,
             E.check_lipsum: lipsum._lipsum_cases, E.check_ece: ece._ece_cases,
             E.check_orthogonality: orthogonality._ortho_cases}[check]()
    mistakes = {m.key: m for m in grading.knob_mistakes(variant, knobs, "x")}
    for m in mistakes.values():
        res = check(m.fn, quiet=True)
        assert res.status == "mistake", (m.key, res)
        named = mistakes[res.diagnosis]
        wrong = set(m.key.split("+"))
        for case in cases:  # the named variant computes what the implementation computes
            a, b = float(m.fn(*case.args, **case.kwargs)), float(named.fn(*case.args, **case.kwargs))
            assert abs(a - b) <= 1e-4 * abs(a) + 1e-5, (m.key, res.diagnosis, case.description)
        if named is not m:
            assert set(res.diagnosis.split("+")) <= wrong or len(res.diagnosis.split("+")) < len(wrong)


def test_starft_classic_mistakes_by_hand():
    def diagonal_only(logits, teacher_logits, labels):
        eye = torch.eye(len(labels), dtype=torch.bool)
        logq = F.log_softmax(logits.masked_fill(eye, -1e8), -1)
        logp = F.log_softmax(teacher_logits.masked_fill(eye, -1e8), -1)
        return F.kl_div(logq, logp, log_target=True, reduction="batchmean")

    def reversed_kl(logits, teacher_logits, labels):
        same = labels[:, None] == labels[None, :]
        logq = F.log_softmax(logits.masked_fill(same, -1e8), -1)
        logp = F.log_softmax(teacher_logits.masked_fill(same, -1e8), -1)
        return F.kl_div(logp, logq, log_target=True, reduction="batchmean")  # KL(q || p)

    def minus_inf(logits, teacher_logits, labels):
        same = labels[:, None] == labels[None, :]
        logq = F.log_softmax(logits.masked_fill(same, float("-inf")), -1)
        logp = F.log_softmax(teacher_logits.masked_fill(same, float("-inf")), -1)
        return (logp.exp() * (logp - logq)).sum(-1).mean()

    assert E.check_starft_kl(diagonal_only, quiet=True).diagnosis == "diagonal_only"
    res = E.check_starft_kl(reversed_kl, quiet=True)
    assert res.diagnosis == "reversed_kl" and "wrong way round" in res.message
    res = E.check_starft_kl(minus_inf, quiet=True)
    assert res.diagnosis == "non_finite" and "-1e8" in res.message


def test_context_kl_wrong_way_round_with_kl_div():
    def reversed_kl(features, features0, context_weights, logit_scale):
        logp = F.log_softmax(logit_scale * features @ context_weights, -1)
        logp0 = F.log_softmax(logit_scale * features0 @ context_weights, -1)
        return F.kl_div(logp0, logp, log_target=True, reduction="batchmean")  # KL(p || p0)

    res = E.check_context_kl(reversed_kl, quiet=True)
    assert res.status == "mistake" and res.diagnosis == "reversed_kl"
    assert "KL(p0 || p)" in res.message


def test_lipsum_scale_outside_the_square():
    def outside(features, features0, text_features, logit_scale):
        gap = (features - features0) @ text_features.t()
        return (logit_scale * gap.pow(2)).sum(1).div(2 * text_features.shape[0]).mean()

    def mean_over_texts(features, features0, text_features, logit_scale):
        return (logit_scale * (features - features0) @ text_features.t()).pow(2).mean()

    assert E.check_lipsum(outside, quiet=True).diagnosis == "scale_outside_square"
    assert E.check_lipsum(mean_over_texts, quiet=True).diagnosis == "divided_by_M"


def test_ece_per_batch_average():
    def per_batch(batches, n_bins=15):
        vals = [rftlab.metrics.ece(p, y, n_bins) for p, y in batches]
        return sum(vals) / len(vals)

    res = E.check_ece(per_batch, quiet=True)
    assert res.diagnosis == "per_batch_average" and "pool" in res.message


def test_orthogonality_squared():
    def squared(proj):
        return (proj.t() @ proj - torch.eye(proj.shape[1])).pow(2).sum()

    assert E.check_orthogonality(squared, quiet=True).diagnosis == "squared_norm"


def _mix_everything(sd0, sd1, alpha):
    return {k: (1 - alpha) * a + alpha * sd1[k] for k, a in sd0.items()}


def _mix_and_cast_back(sd0, sd1, alpha):
    return {k: ((1 - alpha) * a + alpha * sd1[k]).to(a.dtype) for k, a in sd0.items()}


def test_wise_ft_classic_mistakes():
    for fn in (_mix_everything, _mix_and_cast_back):
        res = E.check_wise_ft(fn, quiet=True)
        assert res.status == "mistake" and res.diagnosis == "mixed_integers", res
        assert "num_batches_tracked" in res.message and "is_floating_point" in res.message

    def reversed_alpha(sd0, sd1, alpha):
        return {k: alpha * a + (1 - alpha) * sd1[k] if a.is_floating_point() else a.clone() for k, a in sd0.items()}

    def skips_head(sd0, sd1, alpha):
        return {k: v for k, v in rftlab.wise_ft(sd0, sd1, alpha).items() if k != "head"}

    def to_float32(sd0, sd1, alpha):
        return {k: (1 - alpha) * a.float() + alpha * sd1[k].float() if a.is_floating_point() else a.clone()
                for k, a in sd0.items()}

    def in_place(sd0, sd1, alpha):
        for k, a in sd0.items():
            if a.is_floating_point():
                a.mul_(1 - alpha).add_(alpha * sd1[k])
        return sd0

    def lerp_everything(sd0, sd1, alpha):
        return {k: torch.lerp(a, sd1[k], alpha) for k, a in sd0.items()}

    assert E.check_wise_ft(reversed_alpha, quiet=True).diagnosis == "reversed_alpha"
    res = E.check_wise_ft(skips_head, quiet=True)
    assert res.diagnosis == "missing_keys" and "'head'" in res.message
    assert E.check_wise_ft(to_float32, quiet=True).diagnosis == "dtype_changed"
    assert E.check_wise_ft(in_place, quiet=True).diagnosis == "modified_inputs"
    res = E.check_wise_ft(lerp_everything, quiet=True)
    assert res.status == "error" and "Hint" in res.message and "is_floating_point" in res.message


def test_wise_ft_copying_integers_from_either_end_passes():
    def copy_from_theta0(sd0, sd1, alpha):
        return {k: (1 - alpha) * a + alpha * sd1[k] if a.is_floating_point() else a.clone() for k, a in sd0.items()}

    assert E.check_wise_ft(copy_from_theta0, quiet=True).passed


def _not_implemented(*args, **kwargs):
    raise NotImplementedError


def _ellipsis_body(*args, **kwargs):
    ...


def _returns_ellipsis(*args, **kwargs):
    return ...


@pytest.mark.parametrize("check", CHECKERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("fn", [_not_implemented, _ellipsis_body, _returns_ellipsis], ids=lambda f: f.__name__)
def test_unanswered_says_so_and_falls_back(check, fn, capsys):
    res = check(fn)
    out = capsys.readouterr().out
    assert not res.passed and res.status == "not_answered"
    assert "NOT ANSWERED YET" in out
    chosen = res.implementation()
    assert chosen is res.reference and chosen is not fn
    assert "using rftlab's reference implementation because the exercise is not answered yet" in capsys.readouterr().out


def test_random_wrong_implementations_get_a_generic_mismatch(capsys):
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, generator=g).item() + 0.5

    cases = [
        (E.check_starft_kl, lambda lo, t, y: (lo - t).abs().mean() * noise),
        (E.check_context_kl, lambda f, f0, w, s: ((f - f0) @ w).pow(2).sum() * noise),
        (E.check_lipsum, lambda f, f0, t, s: (f * f0).sum() * noise),
        (E.check_ece, lambda batches, n_bins=15: 0.123 * noise),
        (E.check_orthogonality, lambda p: p.abs().sum() * noise),
        (E.check_wise_ft, lambda a, b, alpha: {k: v.clone() for k, v in b.items()}),
    ]
    for check, fn in cases:
        res = check(fn, quiet=True)
        assert res.status == "mismatch" and res.diagnosis is None, (check.__name__, res)
        assert "expected:" in res.message and "got:" in res.message and "case" in res.message
        assert res.implementation() is res.reference
        assert "reference implementation because your answer does not pass the check yet" in capsys.readouterr().out


def test_errors_shapes_and_detached_values_are_reported_not_raised():
    def crashes(logits, teacher_logits, labels):
        return logits @ torch.ones(3)  # wrong shape: raises

    res = E.check_starft_kl(crashes, quiet=True)
    assert res.status == "error" and "RuntimeError" in res.message and "logits @ torch.ones(3)" in res.message

    res = E.check_lipsum(lambda f, f0, t, s: (s * (f - f0) @ t.t()).pow(2), quiet=True)  # not reduced
    assert res.status == "error" and "single number" in res.message

    def detached(features, features0, text_features, logit_scale):
        return losses.lipsum_regularizer(features, features0, text_features, logit_scale).item()

    assert E.check_lipsum(detached, quiet=True).diagnosis == "detached"

    res = E.check_ece(E.pooled_ece(ece._ece_cases()[0].args[0]), quiet=True)  # a number, not a function
    assert res.status == "error" and "without" in res.message


def test_swap_in_runs_a_function_inside_rftlab_and_restores(clip, small_shift):
    import rftlab.methods.lipsum as lipsum_module
    calls = []

    def mine(*args):
        calls.append(1)
        return losses.lipsum_regularizer(*args)

    original = lipsum_module.lipsum_regularizer
    cfg = rftlab.TrainConfig(steps=2, batch_size=8, eval_every=0, progress=False)
    with E.swap_in("lipsum", mine):
        assert lipsum_module.lipsum_regularizer is mine
        rftlab.finetune("lipsum-ft", clip, small_shift, cfg, m=4)
    assert len(calls) == 2  # one call per training step, inside rftlab's own method
    assert lipsum_module.lipsum_regularizer is original
    with pytest.raises(ValueError, match="cannot swap"):
        with E.swap_in("no_such_thing", mine):
            pass
    with pytest.raises(TypeError, match="function"):
        with E.swap_in("lipsum", 3):
            pass
    assert set(E.SWAP_POINTS) == {"starft_kl", "context_kl", "lipsum", "orthogonality"}
    for path in E.SWAP_POINTS.values():  # every swap point names a function rftlab really calls
        with E.swap_in(path, mine):
            pass
