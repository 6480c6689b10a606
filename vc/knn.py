"""k-nearest-neighbour matching of frames (kNN-VC, Baas, van Niekerk and Kamper, 2023).

    out = knn_match(query, keys, values, k=4)     # (T, V): mean of the values of each query
                                                   # frame's k nearest keys (cosine)

A conversion built on it replaces every source frame by the average of the reference frames
whose *content* is nearest, so the output is made of the target's own spectra. It needs a
content space where the nearest frame of another speaker is the same phone; `vc.models.ppgvc`
phone posteriors are such a space.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_match(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, k: int = 4,
              chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query frame, the mean of the `values` of its `k` nearest `keys` by cosine
    similarity, and the mean similarity of those neighbours.

    Args:
        query: (T, D) frames to replace.
        keys: (N, D) reference frames in the same space.
        values: (N, V) what each reference frame contributes (e.g. its log-mel).
        k: neighbours averaged (clamped to N).
        chunk: query frames per similarity block (bounds memory to chunk x N).

    Returns:
        matched (T, V) and similarity (T,), the mean cosine of the chosen neighbours.
    """
    if query.dim() != 2 or keys.dim() != 2 or values.dim() != 2:
        raise ValueError(f"knn_match takes (T, D) query, (N, D) keys and (N, V) values; got "
                         f"{tuple(query.shape)}, {tuple(keys.shape)}, {tuple(values.shape)}")
    if keys.shape[0] != values.shape[0] or query.shape[1] != keys.shape[1]:
        raise ValueError(f"keys {tuple(keys.shape)} must match values {tuple(values.shape)} in frames "
                         f"and query {tuple(query.shape)} in dimensions")
    if keys.shape[0] == 0:
        raise ValueError("knn_match needs at least one reference frame")
    k = max(1, min(k, keys.shape[0]))
    keys_n = F.normalize(keys.float(), dim=-1)
    matched, similarity = [], []
    for start in range(0, query.shape[0], chunk):
        block = F.normalize(query[start:start + chunk].float(), dim=-1) @ keys_n.T  # (t, N)
        best, index = block.topk(k, dim=-1)
        matched.append(values[index].float().mean(dim=1))
        similarity.append(best.mean(dim=-1))
    return torch.cat(matched), torch.cat(similarity)
