"""The checks of notebook 14 accept a right answer and reject known wrong ones with the intended hint."""
import pytest
import torch

from vaelib.course import checks

from .conftest import assert_catches

# --- exercise 1: the KL to a conditional prior ------------------------------------------------------------------

def right_kl(mu_q, logvar_q, mu_p, logvar_p):
    q = torch.distributions.Normal(mu_q, torch.exp(0.5 * logvar_q))
    p = torch.distributions.Normal(mu_p, torch.exp(0.5 * logvar_p))
    return torch.distributions.kl_divergence(q, p).sum(-1)


def closed_form(mu_q, logvar_q, mu_p, logvar_p):
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


@pytest.mark.parametrize("fn, hint", [
    (lambda mq, lq, mp, lp: right_kl(mq, lq, torch.zeros_like(mp), torch.zeros_like(lp)), "KL to N(0, I)"),
    (lambda mq, lq, mp, lp: right_kl(mp, lp, mq, lq), "KL(p || q)"),
    (lambda mq, lq, mp, lp: 2 * right_kl(mq, lq, mp, lp), "factor 1/2"),
    (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq + (mq - mp) ** 2) / lp - 1).sum(-1), "used as variances"),
    (lambda mq, lq, mp, lp: -right_kl(mq, lq, mp, lp), "sign is flipped"),
    (lambda mq, lq, mp, lp: right_kl(mq, lq, mp, lp).sum(), "one KL per row"),
    (lambda mq, lq, mp, lp: right_kl(mq, lq, mp, lp) + 1, "not the closed-form KL"),
])
def test_conditional_kl(fn, hint):
    assert_catches(checks.check_conditional_kl, closed_form, fn, hint, also_right=(right_kl,),
                   passed="equals the closed form on 3 random layers (to a conditional prior, not to N(0, I))")


# --- exercise 2: free bits per layer ------------------------------------------------------------------------------

def right_free_bits(kl, free_bits):
    return kl.mean(1).clamp_min(free_bits).sum()


@pytest.mark.parametrize("fn, hint", [
    (lambda kl, fb: kl.clamp_min(fb).mean(1).sum(), "each image's KL was clamped"),
    (lambda kl, fb: kl.sum(0).mean().clamp_min(fb), "the layers' sum was clamped"),
    (lambda kl, fb: kl.mean(1).clamp_max(fb).sum(), "clamped from above"),
    (lambda kl, fb: kl.mean(1).sum(), "no clamp at all"),
    (lambda kl, fb: kl.sum(1).clamp_min(fb).sum(), "summed over the batch"),
    (lambda kl, fb: kl.mean(1).clamp_min(fb), "one per layer"),
    (lambda kl, fb: "loss", "one number"),
])
def test_free_bits(fn, hint):
    also = (lambda kl, fb: float(sum(max(row.mean().item(), fb) for row in kl)),)
    assert_catches(checks.check_free_bits, right_free_bits, fn, hint, also_right=also,
                   passed="right on 3 batches, with layers under and over the threshold")


def test_the_free_bits_term_is_what_the_objective_trains():
    from vaelib.hierarchical import HierarchicalVAE, hierarchical_objective
    torch.manual_seed(0)
    model = HierarchicalVAE((4, 3), hidden=16, channels=4)
    x = (torch.rand(8, 1, 28, 28) > 0.5).float()
    torch.manual_seed(1)
    t = model.terms(x)
    torch.manual_seed(1)
    estimate = hierarchical_objective(free_bits=0.5)(model, x)
    expected = -t.reconstruction.mean() + right_free_bits(torch.stack(t.kl), 0.5)
    assert torch.allclose(estimate.loss, expected)
