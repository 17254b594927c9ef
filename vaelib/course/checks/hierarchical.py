"""Checks for notebook 14 (hierarchical VAEs)."""
import torch

from ._feedback import _seeded, answer, either, exercise_check, expect, fail, one_number, wrong_shape

__all__ = ["check_conditional_kl", "check_free_bits"]


def _gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) per coordinate."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1)


@exercise_check("equals the closed form on 3 random layers (to a conditional prior, not to N(0, I))")
def check_conditional_kl(fn) -> bool:
    """``fn(mu_q, logvar_q, mu_p, logvar_p)``: KL(q || p) of the diagonal Gaussians q = N(mu_q, diag exp(logvar_q))
    and p = N(mu_p, diag exp(logvar_p)), all four ``(B, D)``, summed over the D dimensions: ``(B,)`` nats."""
    for g, _ in _seeded(14):
        mu_q, logvar_q, mu_p, logvar_p = (torch.randn(5, 4, generator=g) for _ in range(4))
        right = _gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
        out = torch.as_tensor(answer(fn, mu_q, logvar_q, mu_p, logvar_p), dtype=right.dtype)
        zeros = torch.zeros_like(mu_p)
        expect(out, right.sum(-1), [
            wrong_shape(out, right.sum(-1), "one KL per row, summed over the dimensions"),
            (_gaussian_kl(mu_q, logvar_q, zeros, zeros).sum(-1), "that is the KL to N(0, I). Hint: a lower layer's "
             "KL is to its conditional prior p(z_l | z_>l) = N(mu_p, exp(logvar_p)), the prior the layer above "
             "chose; the KL to N(0, I) is the filed bug of AntixK/PyTorch-VAE #25"),
            (_gaussian_kl(mu_p, logvar_p, mu_q, logvar_q).sum(-1), "that is KL(p || q). Hint: the ELBO holds "
             "KL(q || p), an expectation under the posterior q"),
            (either(2 * right.sum(-1), right.sum(-1) + 0.5 * right.shape[-1]), "off by the factor 1/2 or the "
             "constant. Hint: per dimension, 1/2 (log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1)"),
            (0.5 * (logvar_p - logvar_q + (logvar_q + (mu_q - mu_p) ** 2) / logvar_p - 1).sum(-1), "the log-variances "
             "were used as variances. Hint: the variance is exp(logvar)"),
            (_gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).sum(-1).neg(), "the sign is flipped. Hint: a KL is never "
             "negative"),
        ], "not the closed-form KL between two diagonal Gaussians. Hint: sum, over the dimensions, 1/2 (log var_p - "
           "log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1)")


@exercise_check("right on 3 batches, with layers under and over the threshold")
def check_free_bits(fn) -> bool:
    """``fn(kl, free_bits)``: the KL part of the training loss with free bits per layer (group). ``kl`` is
    ``(L, B)``, each layer's KL for each image of the batch; each layer's batch-mean KL counts as at least
    ``free_bits`` nats, and the layers are summed: one number. (The ELBO itself is reported without it.)"""
    # every layer over the threshold, every layer under it, a mix
    for g, scales in _seeded(15, cases=((3.0, 2.0), (0.2, 0.1), (3.0, 0.1, 0.8, 2.0))):
        kl = torch.rand(len(scales), 6, generator=g) * torch.tensor(scales)[:, None]
        free = 0.5
        right = kl.mean(1).clamp_min(free).sum()
        out = answer(fn, kl, free)
        if isinstance(out, torch.Tensor) and out.numel() == len(scales):
            fail(f"{len(scales)} numbers, one per layer. Hint: the loss sums the layers' clamped KLs into one number")
        value = torch.tensor(one_number(out, ". Hint: return the summed KL term, one number"))
        expect(value, right, [
            (kl.clamp_min(free).mean(1).sum(), "each image's KL was clamped. Hint: free bits clamp the layer's "
             "batch-mean KL, so that images above the threshold can pay for those below"),
            (kl.mean(1).sum(), "no clamp at all. Hint: each layer's batch-mean KL counts as at least free_bits"),
            (kl.mean(1).clamp_max(free).sum(), "clamped from above. Hint: the floor is a minimum, max(KL, free_bits)"),
            (kl.sum(0).mean().clamp_min(free), "the layers' sum was clamped. Hint: the free bits are per layer "
             "(group): each layer keeps its own floor, so no layer can be switched off to pay for another"),
            (kl.sum(1).clamp_min(free).sum(), "summed over the batch. Hint: the threshold is in nats per image: "
             "clamp the batch *mean*"),
        ], "not the free-bits KL term. Hint: sum over layers of max(mean over the batch of the layer's KL, free_bits)")
