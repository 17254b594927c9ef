"""Checks for notebook 15 (VQ-VAE: discrete latents)."""
import math

import torch

from ._feedback import _seeded, answer, either, exercise_check, expect, fail, near_number, one_number, unpack

__all__ = ["check_one_hot_kl", "check_straight_through", "check_vq_losses", "check_codebook_usage"]


@exercise_check("log K per cell, in nats, for 4 codebooks and grids")
def check_one_hot_kl(fn) -> bool:
    """``fn(num_codes, cells)``: KL(q || p) in nats for a one-hot posterior q over ``num_codes`` codes in each of
    ``cells`` independent cells, against the uniform prior p: one number."""
    for k, cells in ((256, 49), (512, 64), (2, 1), (240, 16)):
        out = one_number(answer(fn, k, cells), ". Hint: return the KL summed over the cells, one number")
        right = cells * math.log(k)
        near = near_number(1e-4)
        if near(out, right):
            continue
        fail(f"{out:g} for K = {k}, {cells} cells. Hint: " + next(
            (hint for wrong, hint in [
                (cells * math.log2(k), "that is in bits; the ELBO is in nats (natural log)"),
                (math.log(k), "one cell's KL; the cells are independent, so their KLs add"),
                (-cells * math.log(k), "the sign is flipped; a KL is never negative"),
                (cells * math.log(k - 1) if k > 1 else None, "q puts all its mass on one code: log(1 / (1/K)) = log K"),
                (cells / k, "a one-hot q has entropy 0, so KL = -H(q) - E_q[log p] = log K per cell"),
                (0.0, "the KL is not 0: it is a constant, log K per cell, which is why the loss can leave it out"),
            ] if wrong is not None and near(out, wrong)),
            "KL(q || p) = sum_c q(c) log(q(c) / p(c)) with q one-hot and p = 1/K, per cell, summed over the cells"))


def _nearest(z_e, codebook):
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
    idx = torch.cdist(flat, codebook).argmin(1)
    return codebook[idx].view(z_e.shape[0], z_e.shape[2], z_e.shape[3], -1).permute(0, 3, 1, 2)


@exercise_check("the nearest codes forward, the decoder's gradient copied to z_e backward, on 3 grids")
def check_straight_through(fn) -> bool:
    """``fn(z_e, codebook)``: the straight-through quantization of the encoder's output ``z_e`` ``(B, D, H, W)`` with
    ``codebook`` ``(K, D)``: ``z_q`` ``(B, D, H, W)`` whose values are each cell's nearest code and whose gradient
    with respect to ``z_e`` is the gradient at ``z_q``, copied."""
    for g, _ in _seeded(15):
        codebook = torch.randn(12, 3, generator=g)
        z_e = torch.randn(2, 3, 4, 4, generator=g).requires_grad_(True)
        weights = torch.randn(2, 3, 4, 4, generator=g)            # d loss / d z_q for loss = (weights * z_q).sum()
        out = answer(fn, z_e, codebook)
        if not isinstance(out, torch.Tensor) or out.shape != z_e.shape:
            fail(f"expected z_q of shape {tuple(z_e.shape)}, got {tuple(getattr(out, 'shape', ()))}. Hint: one code "
                 "vector per cell, in the layout of z_e (channels second)")
        right = _nearest(z_e.detach(), codebook)
        if not torch.allclose(out.detach(), right, atol=1e-5):
            wrong_layout = codebook[torch.cdist(z_e.detach().reshape(-1, 3), codebook).argmin(1)].view_as(z_e)
            fail("the values are not each cell's nearest code. Hint: " + (
                "a cell is a D-vector along dimension 1: permute z_e to (B, H, W, D) before flattening to (B*H*W, D)"
                if torch.allclose(out.detach(), wrong_layout, atol=1e-5) else
                "compute the distance of each cell's D-vector to every code and take the argmin"))
        if not out.requires_grad:
            fail("z_q carries no gradient to z_e. Hint: codebook[index] has none (the argmin cuts it); add z_e and "
                 "subtract it again with the difference detached: z_e + (e - z_e).detach()")
        (grad,) = torch.autograd.grad((weights * out).sum(), z_e, allow_unused=True)
        if grad is None or torch.allclose(grad, torch.zeros_like(grad)):
            fail("the gradient reaching z_e is zero. Hint: detach (e - z_e) as a whole, so that only the z_e outside "
                 "it passes the gradient")
        expect(grad, weights, [], "the gradient at z_e is not the gradient at z_q. Hint: the straight-through "
               "estimator copies it unchanged: z_e + (e - z_e).detach()")


@exercise_check("the codebook loss moves only the codes, the commitment loss only the encoder, on 3 batches")
def check_vq_losses(fn) -> bool:
    """``fn(z_e, e, beta)``: ``(codebook_loss, commitment_loss)`` for the encoder outputs ``z_e`` ``(N, D)`` and their
    chosen codes ``e`` ``(N, D)``: the squared distance summed over D and averaged over the N cells, the codebook
    loss with the encoder's output held fixed, the commitment loss (times ``beta``) with the codes held fixed."""
    for g, _ in _seeded(16):
        z_e = torch.randn(10, 4, generator=g).requires_grad_(True)
        e = torch.randn(10, 4, generator=g).requires_grad_(True)
        beta = 0.25
        out = answer(fn, z_e, e, beta)
        codebook_loss, commitment_loss = unpack(out, 2, "expected two numbers, (codebook_loss, commitment_loss)",
                                                convert=lambda v: v)
        distance = (z_e - e).detach().pow(2).sum(1).mean()
        values = torch.stack([torch.as_tensor(codebook_loss).detach().float(),
                              torch.as_tensor(commitment_loss).detach().float()])
        expect(values, torch.stack([distance, beta * distance]), [
            (torch.stack([beta * distance, distance]), "the two are swapped. Hint: beta weighs the commitment loss"),
            (either(torch.stack([distance, distance]), torch.stack([distance, distance]) * (1 + beta)),
             "beta is misplaced. Hint: the codebook loss has weight 1, the commitment loss beta"),
            (either(torch.stack([distance, beta * distance]) / 4, torch.stack([distance, beta * distance]) * 10),
             "a mean over the D coordinates or a sum over the cells. Hint: sum the squares over D, average over cells"),
        ], "not ||sg(z_e) - e||^2 and beta ||z_e - sg(e)||^2 (summed over D, averaged over the cells)")
        for name, loss, moves, still in (("codebook", codebook_loss, e, z_e), ("commitment", commitment_loss, z_e, e)):
            if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
                fail(f"the {name} loss carries no gradient. Hint: stop the gradient of one side only (.detach())")
            grad_moves, grad_still = torch.autograd.grad(loss, (moves, still), allow_unused=True, retain_graph=True)
            if grad_still is not None and grad_still.abs().sum() > 0:
                fail(f"the {name} loss moves the {'encoder' if name == 'codebook' else 'codes'} too. Hint: the "
                     f"{name} loss must hold {'z_e' if name == 'codebook' else 'e'} fixed: detach it")
            if grad_moves is None or grad_moves.abs().sum() == 0:
                fail(f"the {name} loss does not move {'the codes' if name == 'codebook' else 'the encoder'}. Hint: "
                     f"detach the other side, not this one")


@exercise_check("used codes and perplexity right on 3 histograms, one with unused codes")
def check_codebook_usage(fn) -> bool:
    """``fn(codes, num_codes)``: ``(used, perplexity)`` for ``codes`` (a long tensor of any shape, values in
    [0, num_codes)): how many distinct codes occur, and exp of the entropy (nats) of their frequencies."""
    cases = [torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.tensor([5] * 6 + [1, 2]),
             torch.arange(4).repeat_interleave(torch.tensor([1, 2, 3, 10])).view(2, 8)]
    for codes in cases:
        k = 10
        counts = torch.bincount(codes.flatten(), minlength=k).double()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
        used, perplexity = unpack(answer(fn, codes, k), 2, "expected two numbers, (used, perplexity)")
        if used != int((counts > 0).sum()):
            fail(f"used = {used:g} for codes {codes.flatten().tolist()}. Hint: " + (
                "that is the number of cells; count the distinct codes that occur" if used == codes.numel() else
                "that is the codebook size; count only the codes that occur at least once" if used == k else
                "count the codes whose frequency is above 0"))
        near = near_number(1e-4)
        if near(perplexity, math.exp(entropy)):
            continue
        fail(f"perplexity {perplexity:g} for codes {codes.flatten().tolist()}. Hint: " + next(
            (hint for wrong, hint in [
                (entropy, "that is the entropy; the perplexity is exp(entropy), a number of codes"),
                (entropy / math.log(2), "that is the entropy in bits; the perplexity is exp of the entropy in nats"),
                (math.exp(entropy) / k, "divided by K: the perplexity is a count of codes, from 1 to K"),
                (float("nan"), "0 * log 0 gave NaN: leave out the codes that never occur (their term is 0)"),
            ] if near(perplexity, wrong) or (math.isnan(wrong) and math.isnan(perplexity))),
            "exp(-sum_c p_c log p_c), with p_c the frequency of code c among the cells"))
