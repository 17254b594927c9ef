"""The checks of notebook 15 accept a right answer and reject known wrong ones with the intended hint."""
import math

import pytest
import torch

from vaelib.course import checks
from vaelib.vq import VectorQuantizer, codebook_usage

from .conftest import assert_catches

# --- the KL of a one-hot posterior -------------------------------------------------------------------------------


def right_kl(k, cells):
    return cells * math.log(k)


@pytest.mark.parametrize("fn, hint", [
    (lambda k, cells: cells * math.log2(k), "in bits"),
    (lambda k, cells: math.log(k), "one cell's KL"),
    (lambda k, cells: -cells * math.log(k), "sign is flipped"),
    (lambda k, cells: cells * math.log(k - 1), "all its mass on one code"),
    (lambda k, cells: 0.0, "a constant"),
    (lambda k, cells: [cells * math.log(k)] * 2, "one number"),
])
def test_one_hot_kl(fn, hint):
    assert_catches(checks.check_one_hot_kl, right_kl, fn, hint, passed="log K per cell, in nats, for 4 codebooks and grids")


# --- the straight-through estimator ------------------------------------------------------------------------------

def right_st(z_e, codebook):
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
    e = codebook[torch.cdist(flat.detach(), codebook).argmin(1)]
    e = e.view(z_e.shape[0], z_e.shape[2], z_e.shape[3], -1).permute(0, 3, 1, 2)
    return z_e + (e - z_e).detach()


def vaelib_st(z_e, codebook):
    q = VectorQuantizer(len(codebook), codebook.shape[1])
    with torch.no_grad():
        q.codebook.copy_(codebook)
    return q(z_e).z_q


def no_gradient(z_e, codebook):
    return right_st(z_e, codebook).detach()


def cancelled(z_e, codebook):
    e = right_st(z_e, codebook).detach()
    return z_e + e - z_e.detach() * 0 - z_e             # value e, gradient 1 - 1 = 0


def wrong_layout(z_e, codebook):
    e = codebook[torch.cdist(z_e.detach().reshape(-1, z_e.shape[1]), codebook).argmin(1)].view_as(z_e)
    return z_e + (e - z_e).detach()


@pytest.mark.parametrize("fn, hint", [
    (no_gradient, "carries no gradient"),
    (cancelled, "gradient reaching z_e is zero"),
    (wrong_layout, "permute z_e"),
    (lambda z_e, codebook: right_st(z_e, codebook) * 2, "not each cell's nearest code"),
    (lambda z_e, codebook: z_e + (right_st(z_e, codebook) - z_e).detach() * 1 + 0.0 * z_e.pow(2) + (z_e - z_e.detach()),
     "not the gradient at z_q"),
    (lambda z_e, codebook: right_st(z_e, codebook)[:, 0], "expected z_q of shape"),
])
def test_straight_through(fn, hint):
    assert_catches(checks.check_straight_through, right_st, fn, hint, also_right=(vaelib_st,),
                   passed="the nearest codes forward, the decoder's gradient copied to z_e backward, on 3 grids")


# --- the codebook and commitment losses --------------------------------------------------------------------------

def right_losses(z_e, e, beta):
    return (z_e.detach() - e).pow(2).sum(1).mean(), beta * (z_e - e.detach()).pow(2).sum(1).mean()


def vaelib_losses(z_e, e, beta):     # VectorQuantizer's own terms, with e as the codebook and each cell's code fixed
    q = VectorQuantizer(len(e), e.shape[1], commitment=beta)
    del q.codebook                    # the given codes themselves, so that the gradient reaches them
    q.codebook = e
    q.nearest = lambda flat: torch.arange(len(flat))
    out = q(z_e.view(len(z_e), -1, 1, 1))
    return out.terms["codebook"], beta * out.terms["commitment"]


@pytest.mark.parametrize("fn, hint", [
    (lambda z_e, e, b: right_losses(z_e, e, b)[::-1], "swapped"),
    (lambda z_e, e, b: (right_losses(z_e, e, b)[0], right_losses(z_e, e, b)[0]), "beta is misplaced"),
    (lambda z_e, e, b: tuple(v / 4 for v in right_losses(z_e, e, b)), "average over cells"),
    (lambda z_e, e, b: ((z_e - e).pow(2).sum(1).mean(), b * (z_e - e.detach()).pow(2).sum(1).mean()),
     "the codebook loss moves the encoder too"),
    (lambda z_e, e, b: ((z_e.detach() - e).pow(2).sum(1).mean(), b * (z_e.detach() - e).pow(2).sum(1).mean()),
     "the commitment loss moves the codes too"),
    (lambda z_e, e, b: tuple(v.detach() for v in right_losses(z_e, e, b)), "carries no gradient"),
    (lambda z_e, e, b: right_losses(z_e, e, b)[0], "two numbers"),
])
def test_vq_losses(fn, hint):
    assert_catches(checks.check_vq_losses, right_losses, fn, hint, also_right=(vaelib_losses,),
                   passed="the codebook loss moves only the codes, the commitment loss only the encoder, on 3 batches")


# --- codebook usage and perplexity -------------------------------------------------------------------------------

def right_usage(codes, k):
    usage = codebook_usage(codes, k)
    return usage["used"], usage["perplexity"]


def _entropy(codes, k):
    p = torch.bincount(codes.flatten(), minlength=k).double()
    p = p / p.sum()
    return -(p[p > 0] * p[p > 0].log()).sum().item()


@pytest.mark.parametrize("fn, hint", [
    (lambda codes, k: (codes.numel(), right_usage(codes, k)[1]), "number of cells"),
    (lambda codes, k: (k, right_usage(codes, k)[1]), "the codebook size"),
    (lambda codes, k: (right_usage(codes, k)[0], _entropy(codes, k)), "that is the entropy;"),
    (lambda codes, k: (right_usage(codes, k)[0], _entropy(codes, k) / math.log(2)), "in bits"),
    (lambda codes, k: (right_usage(codes, k)[0], right_usage(codes, k)[1] / k), "divided by K"),
    (lambda codes, k: (right_usage(codes, k)[0], float("nan")), "0 * log 0"),
    (lambda codes, k: right_usage(codes, k)[1], "two numbers"),
])
def test_codebook_usage(fn, hint):
    assert_catches(checks.check_codebook_usage, right_usage, fn, hint,
                   passed="used codes and perplexity right on 3 histograms, one with unused codes")
