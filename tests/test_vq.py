"""vaelib.vq and vaelib.vqvae: quantizers, their gradients and statistics, and the VQ-VAE trained through fit."""
import itertools
import math

import pytest
import torch

import vaelib
from vaelib.vq import FSQ, VectorQuantizer, codebook_usage, make_quantizer
from vaelib.vqvae import VQVAE, vq_objective


def _z(b=4, d=3, h=2, w=2, seed=0):
    return torch.randn(b, d, h, w, generator=torch.Generator().manual_seed(seed))


def test_each_vector_goes_to_its_nearest_code():
    vq = VectorQuantizer(num_codes=5, code_dim=3)
    vq.codebook.data.copy_(torch.randn(5, 3, generator=torch.Generator().manual_seed(1)))   # well apart
    z = _z()
    q = vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    expected = torch.cdist(flat, vq.codebook.detach()).argmin(1)
    assert torch.equal(q.codes.flatten(), expected) and q.codes.shape == (4, 2, 2)
    assert torch.allclose(q.z_q, vq.lookup(q.codes))            # the values the decoder reads are the codes


@pytest.mark.parametrize("quantizer", [VectorQuantizer(num_codes=5, code_dim=3), FSQ((3, 4, 5))],
                         ids=["vq", "fsq"])
def test_straight_through_copies_the_decoder_input_gradient_to_the_encoder(quantizer):
    z = _z().requires_grad_()
    q = quantizer(z)
    upstream = torch.randn_like(q.z_q)
    (q.z_q * upstream).sum().backward()           # a decoder whose input gradient is `upstream`
    if isinstance(quantizer, FSQ):                 # through the bounding tanh, then straight through the rounding
        zz = z.detach().clone().requires_grad_()
        (quantizer._bound(zz.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) / (quantizer._levels // 2)[None, :, None, None]
         * upstream).sum().backward()
        assert torch.allclose(z.grad, zz.grad)
    else:
        assert torch.equal(z.grad, upstream)


def test_the_codebook_and_commitment_losses_move_what_each_must():
    vq = VectorQuantizer(num_codes=5, code_dim=3, commitment=0.25)
    z = _z().requires_grad_()
    q = vq(z)
    q.terms["codebook"].backward(retain_graph=True)
    assert z.grad is None and vq.codebook.grad.abs().sum() > 0     # the codebook loss moves only the codes
    vq.codebook.grad = None
    q.terms["commitment"].backward()
    assert vq.codebook.grad is None and z.grad.abs().sum() > 0      # the commitment loss moves only the encoder
    assert torch.isclose(q.loss, q.terms["codebook"] + 0.25 * q.terms["commitment"])


def test_ema_updates_put_the_codes_at_their_cluster_means():
    torch.manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    points = (centres[:, None, :] + 0.3 * torch.randn(3, 20, 2)).reshape(-1, 2)
    z = points.t().reshape(1, 2, 60, 1)
    vq = VectorQuantizer(num_codes=3, code_dim=2, update="ema", decay=0.5, eps=1e-12)
    vq.codebook.data.copy_(centres + 0.5)          # near, not at, the clusters
    vq.ema_sum.copy_(vq.codebook.data)
    vq.train()
    for _ in range(40):                            # a fixed batch: the running means converge to its means
        codes = vq(z).codes.flatten()
    for j in range(3):
        assert torch.allclose(vq.codebook[j], points[codes == j].mean(0), atol=1e-5)
    vq.eval()
    before = vq.codebook.detach().clone()
    vq(z + 1.0)
    assert torch.equal(vq.codebook, before)        # no updates in eval mode


def test_restart_reseeds_dead_codes_from_the_batch():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=8, code_dim=2, update="ema", restart=True)
    vq.train()
    z = 5 + torch.randn(1, 2, 16, 1)               # far from every code (they start within +-1/8)
    vq(z)
    assert vq.restarts.item() >= 7                 # one code took the batch; the others were dead and re-seeded
    flat = z.reshape(2, -1).t()
    restarted = (vq.codebook[:, None, :] == flat[None]).all(-1).any(1)
    assert restarted.sum() >= 7


def test_codebook_usage_on_a_hand_made_histogram():
    codes = torch.tensor([0] * 4 + [1] * 2 + [2] * 2)     # p = 1/2, 1/4, 1/4 over 8 codes
    usage = codebook_usage(codes, 8)
    assert usage["used"] == 3
    assert math.isclose(usage["perplexity"], math.exp(1.5 * math.log(2)), rel_tol=1e-12)   # 2^1.5
    assert usage["counts"].tolist() == [4, 2, 2, 0, 0, 0, 0, 0]
    assert math.isclose(codebook_usage(torch.arange(16), 16)["perplexity"], 16, rel_tol=1e-12)


def test_fsq_has_prod_levels_distinct_codes_each_reachable():
    fsq = FSQ((8, 6, 5))
    assert fsq.num_codes == 240 and fsq.code_dim == 3
    grid = torch.tensor(list(itertools.product(*[range(n) for n in (8, 6, 5)])))    # each channel's digit
    codes = (grid * fsq._basis).sum(1).view(1, 240, 1)
    assert torch.unique(codes).numel() == 240
    # an encoder output for each grid point (the inverse of the bounding tanh): it quantizes to that code, and
    # the decoder reads the point that lookup gives, all 240 distinct and inside [-1, 1]
    half = (fsq._levels - 1) * (1 + fsq.eps) / 2
    offset = torch.where(fsq._levels % 2 == 0, 0.5, 0.0)
    value = grid - fsq._levels // 2                                                  # the rounded values
    z = torch.atanh((value + offset) / half) - torch.atanh(offset / half)
    q = fsq(z.t().reshape(1, 3, 240, 1))
    assert torch.equal(q.codes, codes)
    points = fsq.lookup(codes)
    assert torch.allclose(q.z_q, points) and points.abs().max() <= 1
    assert torch.unique(points.reshape(3, -1).t(), dim=0).shape[0] == 240


def test_a_wrong_layout_or_setting_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"expected the encoder's output as \(B, 3, H, W\), got \(4, 2, 2, 3\)"):
        VectorQuantizer(num_codes=5, code_dim=3)(_z().permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="restart=True needs update='ema'"):
        VectorQuantizer(restart=True)
    with pytest.raises(ValueError, match="quantizer='kmeans': choose one of vq, ema, ema_restart, fsq"):
        make_quantizer("kmeans")
    with pytest.raises(ValueError, match="at least 2 levels"):
        FSQ((8, 1))


def test_a_vq_vae_refuses_to_sample_without_a_prior():
    with pytest.raises(ValueError, match="no prior over its codes"):
        VQVAE().sample(16)


@pytest.mark.parametrize("quantizer", ["vq", "ema", "ema_restart", "fsq"])
def test_each_vq_vae_trains_through_fit_saves_and_loads(tmp_path, quantizer):
    images = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    model = VQVAE(quantizer, num_codes=32, code_dim=8, channels=8)
    history = vaelib.fit(model, images[:192], images[192:], objective=vq_objective, epochs=2, seed=0,
                         progress=False)
    assert history[-1]["test_mse"] < history[0]["train_mse"] and "train_commitment" in history[0] or quantizer == "fsq"
    assert model.encode_codes(images[:4]).shape == (4, 7, 7)
    path = vaelib.save(model, tmp_path / "vq.pth")
    again = vaelib.load(path, model=VQVAE(**model.config))
    x = images[:8]
    assert torch.equal(again.encode_codes(x), model.encode_codes(x))
    assert torch.equal(again.decode_codes(model.encode_codes(x)), model.decode_codes(model.encode_codes(x)))


# --- the prior over the code grid -------------------------------------------------------------------------

def test_the_code_prior_is_causal():
    """Changing the code at cell j changes no logit at cells <= j in raster order, and some after it."""
    from vaelib.code_prior import CodePixelCNN
    torch.manual_seed(0)
    prior = CodePixelCNN(16, features=16, layers=3).eval()
    codes = torch.randint(0, 16, (1, 7, 7), generator=torch.Generator().manual_seed(0))
    base = prior(codes)
    for j in (0, 10, 24, 48):
        changed = codes.clone()
        changed.view(-1)[j] = (changed.view(-1)[j] + 1) % 16
        moved = (prior(changed) - base).abs().amax(1).flatten() > 1e-6     # per cell, raster order
        assert not moved[:j + 1].any(), f"cell {j} reaches back to {moved[:j + 1].nonzero().flatten().tolist()}"
        assert j == 48 or moved[j + 1:].any()


def test_the_code_prior_learns_structure_that_uniform_codes_lack():
    from vaelib.code_prior import CodePixelCNN, code_prior_objective, codes_as_images
    g = torch.Generator().manual_seed(0)
    # each grid repeats one code: after its first cell, a grid is certain
    codes = torch.randint(0, 16, (512, 1, 1), generator=g).expand(512, 7, 7).contiguous()
    prior = CodePixelCNN(16, features=32, layers=2)
    history = vaelib.fit(prior, codes_as_images(codes), objective=code_prior_objective, epochs=15, lr=3e-3, seed=0,
                         progress=False)
    assert history[0]["train_bits"] > 49 * 3 and history[-1]["train_bits"] < 49 * 4 / 4     # uniform: 196 bits
    mixed = torch.randint(0, 16, (8, 7, 7), generator=g)
    assert (prior.log_prob(codes[:8]) > prior.log_prob(mixed) + 50).all()      # nats: structure is likely
    drawn = prior.sample(8, generator=torch.Generator().manual_seed(1))
    assert drawn.shape == (8, 7, 7) and drawn.min() >= 0 and drawn.max() < 16
    assert (drawn == drawn[:, :1, :1]).float().mean() > 0.9                   # its draws repeat their first code


def test_wrong_codes_are_refused_in_one_line():
    from vaelib.code_prior import CodePixelCNN, codes_as_images, images_as_codes
    prior = CodePixelCNN(8, features=8, layers=1)
    with pytest.raises(ValueError, match=r"values must lie in \[0, 8\), got 0 to 9: the prior's num_codes"):
        prior(torch.tensor([[[0, 9]]]))
    with pytest.raises(ValueError, match="expected a long tensor"):
        prior(torch.zeros(1, 7, 7))
    codes = torch.randint(0, 256, (4, 7, 7))
    assert torch.equal(images_as_codes(codes_as_images(codes).float() / 255), codes)
    with pytest.raises(ValueError, match="at most 256 codes"):
        codes_as_images(codes + 1)
