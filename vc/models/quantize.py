"""A reusable vector quantiser (VQ-VAE, van den Oord et al. 2017) for voicelab's models.

    vq = VectorQuantizer(codebook_size=512, dim=64)          # EMA codebook, beta = 0.25
    out = vq(features)                                       # features (..., 64), channel-last
    loss = reconstruction + out.loss                         # beta * commitment (+ codebook term)
    out.quantized, out.codes, out.perplexity

Two ways to learn the codebook:
- ``ema=True`` (default): codewords are exponential moving averages of the encoder vectors
  assigned to them (VQ-VAE paper, appendix A.1). The codebook is a buffer, so no optimiser
  touches it; it changes only in training mode, inside `forward`.
- ``ema=False``: the codebook is a parameter pulled toward its assigned vectors by the codebook
  loss ``||sg(x) - e||^2``, which `out.loss` includes.

Either way the encoder is kept near its codewords by the commitment loss
``beta * ||x - sg(e)||^2``, and gradients reach the encoder through the straight-through
estimator (``x + sg(e - x)``).

Against codebook collapse (every vector mapped to one or two codewords, common when the
random initial codebook sits far from the encoder's outputs), two opt-in remedies:
``init_from_data`` sets the codebook to random input vectors on the first training batch, and
``restart_threshold`` (EMA only) moves codewords whose EMA usage falls below it onto random
input vectors of the current batch (as in Jukebox and SoundStream).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Quantized:
    """What `VectorQuantizer.forward` returns for input features (..., dim).

    Attributes:
        quantized: the nearest codewords (..., dim), with the straight-through gradient to the
            input (its value is the codewords, its gradient flows to the input as is).
        codes: codebook ids (...,), int64.
        loss: the quantiser's share of the training loss: commitment * beta, plus the codebook
            loss when the codebook is learned by gradient (ema=False). Scalar.
        commitment: unweighted commitment loss mean ||x - sg(e)||^2. Scalar.
        codebook_loss: unweighted codebook loss mean ||sg(x) - e||^2 (0 with ema). Scalar.
        perplexity: exp(entropy) of the code usage in this batch: 1 when one code is used,
            codebook_size when all are used equally. Scalar, no gradient.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    commitment: torch.Tensor
    codebook_loss: torch.Tensor
    perplexity: torch.Tensor


class VectorQuantizer(nn.Module):
    """Nearest-codeword quantisation of channel-last features.

    Args:
        codebook_size: number of codewords K.
        dim: size of each codeword (the input's last axis).
        beta: weight of the commitment loss.
        ema: learn the codebook by exponential moving averages (True) or by the codebook loss.
        decay: EMA decay (0.99 in the VQ-VAE paper).
        epsilon: Laplace smoothing of EMA counts, so unused codewords do not divide by zero.
        normalize: L2-normalise inputs and codewords before matching (cosine-similarity codes,
            codewords on the unit sphere); `quantized` is then a unit vector.
        init_from_data: on the first forward in training mode, replace the codebook with
            randomly chosen input vectors.
        restart_threshold: with ema, codewords whose EMA count (decayed number of vectors
            assigned per batch) drops below this are re-seeded from random input vectors of
            the batch; 0 turns it off.
    """

    def __init__(self, codebook_size: int, dim: int, *, beta: float = 0.25, ema: bool = True,
                 decay: float = 0.99, epsilon: float = 1e-5, normalize: bool = False,
                 init_from_data: bool = False, restart_threshold: float = 0.0):
        super().__init__()
        if codebook_size < 1 or dim < 1:
            raise ValueError(f"codebook_size and dim must be positive, got {codebook_size}, {dim}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.codebook_size, self.dim = codebook_size, dim
        self.beta, self.ema, self.decay, self.epsilon = beta, ema, decay, epsilon
        self.normalize = normalize
        self.init_from_data, self.restart_threshold = init_from_data, restart_threshold
        if restart_threshold > 0 and not ema:
            raise ValueError("restart_threshold needs ema=True (it reads the EMA usage counts)")
        # Saved, so a loaded model does not re-initialise its trained codebook.
        self.register_buffer("initialized", torch.tensor(not init_from_data))
        initial = torch.randn(codebook_size, dim)
        if normalize:
            initial = F.normalize(initial, dim=-1)
        if ema:
            # Buffers, so they save with the weights and no optimiser updates them.
            self.register_buffer("codebook", initial)
            self.register_buffer("ema_count", torch.ones(codebook_size))
            self.register_buffer("ema_sum", initial.clone())
        else:
            self.codebook = nn.Parameter(initial)

    def extra_repr(self) -> str:
        return (f"codebook_size={self.codebook_size}, dim={self.dim}, beta={self.beta}, "
                f"ema={self.ema}, normalize={self.normalize}")

    def codewords(self) -> torch.Tensor:
        """The codebook as used for matching (K, dim): unit vectors when `normalize`."""
        return F.normalize(self.codebook, dim=-1) if self.normalize else self.codebook

    def nearest(self, features: torch.Tensor) -> torch.Tensor:
        """Codebook ids (...,) of the nearest codewords to `features` (..., dim)."""
        flat = features.reshape(-1, self.dim)
        if self.normalize:
            flat = F.normalize(flat, dim=-1)
        codebook = self.codewords()
        # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2; ||x||^2 does not change the argmin.
        distances = codebook.pow(2).sum(-1)[None, :] - 2 * flat @ codebook.t()
        return distances.argmin(-1).reshape(features.shape[:-1])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codewords (..., dim) of codebook ids (...,)."""
        return F.embedding(codes, self.codewords())

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> Quantized:
        """Quantise `features` (..., dim).

        Args:
            mask: optional bool (...,), True where a vector is real; padded vectors are
                quantised but left out of the losses, the EMA update and the perplexity.
        """
        if features.shape[-1] != self.dim:
            raise ValueError(f"expected features with last axis {self.dim}, "
                             f"got shape {tuple(features.shape)}")
        if self.normalize:
            features = F.normalize(features, dim=-1)
        flat = features.reshape(-1, self.dim)
        weights = (flat.new_ones(flat.shape[0]) if mask is None
                   else mask.reshape(-1).to(flat.dtype))
        total = weights.sum().clamp(min=1.0)
        if self.training and not bool(self.initialized):
            self._init_codebook(flat.detach(), weights)
        codes = self.nearest(features)
        one_hot = F.one_hot(codes.reshape(-1), self.codebook_size).to(flat.dtype) * weights[:, None]

        if self.training and self.ema:
            self._ema_update(flat.detach(), one_hot)
        chosen = self.lookup(codes)
        if self.training and self.ema and self.restart_threshold > 0:
            # After the lookup, so this batch is quantised by the codebook it was matched to.
            self._restart_dead_codes(flat.detach(), weights)

        def masked_mean(squared: torch.Tensor) -> torch.Tensor:
            per_vector = squared.reshape(-1, self.dim).mean(-1)
            return (per_vector * weights).sum() / total

        commitment = masked_mean((features - chosen.detach()).pow(2))
        if self.ema:
            codebook_loss = torch.zeros((), dtype=flat.dtype, device=flat.device)
        else:
            codebook_loss = masked_mean((features.detach() - chosen).pow(2))
        loss = self.beta * commitment + codebook_loss
        # Straight-through: forward value is the codeword, backward is the identity to features.
        quantized = features + (chosen - features).detach()

        usage = one_hot.sum(0) / total
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum()).detach()
        return Quantized(quantized, codes, loss, commitment, codebook_loss, perplexity)

    @torch.no_grad()
    def _random_vectors(self, flat: torch.Tensor, weights: torch.Tensor, count: int
                        ) -> torch.Tensor:
        """`count` real vectors drawn from `flat` (N, dim) (with replacement if N < count)."""
        real = flat[weights > 0]
        if len(real) == 0:
            real = flat
        index = torch.randint(len(real), (count,), device=flat.device) if len(real) < count \
            else torch.randperm(len(real), device=flat.device)[:count]
        return real[index]

    @torch.no_grad()
    def _init_codebook(self, flat: torch.Tensor, weights: torch.Tensor) -> None:
        vectors = self._random_vectors(flat, weights, self.codebook_size)
        self.codebook.data.copy_(vectors)
        if self.ema:
            self.ema_sum.copy_(vectors)
            self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, weights: torch.Tensor) -> None:
        dead = self.ema_count < self.restart_threshold
        count = int(dead.sum())
        if count == 0:
            return
        vectors = self._random_vectors(flat, weights, count)
        self.codebook[dead] = vectors
        self.ema_sum[dead] = vectors * self.restart_threshold
        self.ema_count[dead] = self.restart_threshold

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, one_hot: torch.Tensor) -> None:
        """Move each codeword toward the mean of the vectors (N, dim) assigned to it."""
        self.ema_count.mul_(self.decay).add_(one_hot.sum(0), alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(one_hot.t() @ flat, alpha=1 - self.decay)
        # Laplace smoothing keeps never-used codewords finite (they stay where they are).
        n = self.ema_count.sum()
        count = (self.ema_count + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
        self.codebook.copy_(self.ema_sum / count[:, None])


def code_perplexity(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """exp(entropy) of the usage of codebook ids `codes` (any shape): 1..codebook_size."""
    usage = torch.bincount(codes.reshape(-1), minlength=codebook_size).to(torch.float32)
    usage = usage / usage.sum().clamp(min=1.0)
    return torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
