"""Whole-scene numpy oracles of the classical comparators, written out independently of the kernels.

Each takes both dates as float32 ``[C, H, W]`` in [0, 1] (0 where invalid) and the
validity mask, fits on every valid pixel (the test scenes have fewer than the fit's
sample size), and returns the products as the pipeline encodes them. Only the 2-means
clustering is shared with the kernels (:func:`two_means`, tested on its own).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2

from s2c_batch.kernels.comparators.classical.pca_kmeans import two_means
from s2c_batch.kernels.raster.encode import encode_products


def standardize(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each date's bands minus their mean over the valid pixels, over their (population) std; 0 where invalid."""
    out = []
    for x in (a, b):
        values = x[:, valid].astype(np.float64)
        mean, std = values.mean(axis=1), values.std(axis=1)
        z = (x - mean[:, None, None].astype(np.float32)) / std[:, None, None].astype(np.float32)
        z[:, ~valid] = 0
        out.append(z.astype(np.float32))
    return out[0], out[1]


def magnitude(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a - b||`` over the bands, float32."""
    d = a - b
    return np.sqrt((d * d).sum(axis=0, dtype=np.float32))


def linear(s: np.ndarray, valid: np.ndarray, percentile: float) -> np.ndarray:
    """``min(1, s / s_ref)`` with ``s_ref`` the percentile of ``s`` over the valid pixels."""
    ref = float(np.percentile(s[valid], percentile))
    return np.minimum(np.float32(1), s / np.float32(ref if ref > 0 else 1.0)).astype(np.float32)


def cva(a: np.ndarray, b: np.ndarray, valid: np.ndarray, *, standardized: bool, percentile: float = 99.9) -> np.ndarray:
    """Fitted CVA's probability."""
    if standardized:
        a, b = standardize(a, b, valid)
    return linear(magnitude(a, b), valid, percentile)


def irmad_magnitude(a: np.ndarray, b: np.ndarray, valid: np.ndarray, *, tolerance: float = 1e-4,
                    max_iterations: int = 100) -> np.ndarray:
    """IR-MAD as the published implementation writes it (inverse matrices and eig): ``sqrt(Z)``, float32."""
    c = a.shape[0]
    x, y = a[:, valid].T.astype(np.float64), b[:, valid].T.astype(np.float64)
    n = len(x)
    w = np.ones(n)
    previous = None
    for it in range(max_iterations):
        mx, my = (w[:, None] * x).sum(0) / w.sum(), (w[:, None] * y).sum(0) / w.sum()
        v = np.concatenate([x - mx, y - my], axis=1)
        cov = (np.sqrt(w)[:, None] * v).T @ (np.sqrt(w)[:, None] * v) / w.sum() * (n / (n - 1))
        s11, s22, s12 = cov[:c, :c], cov[c:, c:], cov[:c, c:]
        val, vec_a = np.linalg.eig(np.linalg.inv(s11) @ s12 @ np.linalg.inv(s22) @ s12.T)
        order = np.argsort(val.real)
        rho = np.sqrt(val.real[order])
        vec_a = vec_a.real[:, order]
        vec_b = np.linalg.inv(s22) @ s12.T @ vec_a
        vec_a = vec_a / np.sqrt(np.diag(vec_a.T @ s11 @ vec_a))
        vec_b = vec_b / np.sqrt(np.diag(vec_b.T @ s22 @ vec_b))
        if previous is not None and np.max(np.abs(rho - previous)) < tolerance:
            break
        previous = rho
        if it < max_iterations - 1:
            mad = (x - mx) @ vec_a - (y - my) @ vec_b
            w = 1 - chi2.cdf((mad**2 / (2 * (1 - rho))).sum(axis=1), c)
    xa = np.moveaxis(a.astype(np.float64), 0, -1)
    ya = np.moveaxis(b.astype(np.float64), 0, -1)
    mad = (xa - mx) @ vec_a - (ya - my) @ vec_b
    return np.sqrt((mad**2 / (2 * (1 - rho))).sum(axis=-1)).astype(np.float32)


def pca_features(a: np.ndarray, b: np.ndarray, valid: np.ndarray, *, h: int = 5, s: int = 3,
                 standardized: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Celik's PCA of the whole scene: ``(block mean [h*h], eigenvectors [h*h, S], features [S, H, W], d [H, W])``."""
    if standardized:
        a, b = standardize(a, b, valid)
    d = magnitude(a, b)
    d[~valid] = 0
    rows, cols = d.shape[0] // h, d.shape[1] // h
    cut = (slice(0, rows * h), slice(0, cols * h))
    blocks = d[cut].reshape(rows, h, cols, h).transpose(0, 2, 1, 3).reshape(-1, h * h)
    full = valid[cut].reshape(rows, h, cols, h).transpose(0, 2, 1, 3).reshape(-1, h * h).all(axis=1)
    blocks = blocks[full].astype(np.float64)
    mean = blocks.mean(axis=0)
    cov = (blocks - mean).T @ (blocks - mean) / len(blocks)
    val, vec = np.linalg.eigh(cov)
    vec = vec[:, np.argsort(val)[::-1][:s]]
    vec = vec * np.sign(vec[np.argmax(np.abs(vec), axis=0), np.arange(s)])
    before = (h + 1) // 2 - 1
    pad = np.pad(d, ((before, h - 1 - before), (before, h - 1 - before)))
    feats = np.zeros((s, *d.shape), np.float32)
    for k in range(h * h):  # each neighbourhood offset, projected
        di, dj = divmod(k, h)
        shifted = pad[di : di + d.shape[0], dj : dj + d.shape[1]] - np.float32(mean[k])
        for j in range(s):
            feats[j] += np.float32(vec[k, j]) * shifted
    return mean, vec, feats, d


def pca_kmeans(a: np.ndarray, b: np.ndarray, valid: np.ndarray, *, h: int = 5, s: int = 3,
               standardized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Celik's PCA-KMeans on the whole scene: ``(d_n / (d_n + d_c) float32 [H, W], change centre [S])``."""
    _, _, feats, d = pca_features(a, b, valid, h=h, s=s, standardized=standardized)
    sample = feats[:, valid].T.astype(np.float64)
    centres = two_means(sample, n_init=10, seed=0)
    near1 = ((sample - centres[1]) ** 2).sum(1) < ((sample - centres[0]) ** 2).sum(1)
    dv = d[valid]
    change = 1 if dv[near1].mean() > dv[~near1].mean() else 0
    dist = [np.sqrt(sum((feats[j] - np.float32(centres[k][j])) ** 2 for j in range(s))) for k in (0, 1)]
    d_n, d_c = dist[1 - change], dist[change]
    total = d_n + d_c
    prob = np.where(total > 0, d_n / np.where(total > 0, total, 1), np.float32(0.5)).astype(np.float32)
    return prob, centres[change]


def otsu_level(encoded: np.ndarray) -> int:
    """Otsu over the 255 levels of an encoded ``change_prob`` (255 = nodata), by exhaustive search."""
    hist = np.bincount(encoded[encoded != 255].ravel(), minlength=255)[:255].astype(np.float64)
    levels = np.arange(255)
    best, best_k = -1.0, 255
    for k in range(1, 255):
        w0, w1 = hist[:k].sum(), hist[k:].sum()
        if w0 and w1:
            m0 = (hist[:k] * levels[:k]).sum() / w0
            m1 = (hist[k:] * levels[k:]).sum() / w1
            if w0 * w1 * (m0 - m1) ** 2 > best:
                best, best_k = w0 * w1 * (m0 - m1) ** 2, k
    return best_k


def products(prob: np.ndarray, valid: np.ndarray, threshold: float | str) -> tuple[dict[str, np.ndarray], int | None]:
    """Encoded products; with ``otsu``, the mask from Otsu's level of the encoded probability."""
    if threshold != "otsu":
        return encode_products(prob, valid, threshold=float(threshold)), None
    enc = encode_products(prob, valid, threshold=0.5)
    level = otsu_level(enc["change_prob"])
    mask = (enc["change_prob"] >= level).astype(np.uint8)
    mask[enc["change_prob"] == 255] = 255
    return {"change_prob": enc["change_prob"], "change_mask": mask}, level


# --- The mask-level comparators: per-tile numpy oracles of their decision rules. ---------------
# Masks are bool [n, H, W] numpy arrays; features float [C, h, w] on a token grid.


def upsample(features: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with ``align_corners=True``, written out: float64 ``[C, H, W]``."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            pos = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
            lo = min(int(np.floor(pos)), n_in - 1)
            hi = min(lo + 1, n_in - 1)
            m[i, lo] += 1 - (pos - lo)
            m[i, hi] += pos - lo
        return m

    wy, wx = weights(features.shape[1], size[0]), weights(features.shape[2], size[1])
    return np.einsum("Hh,chw,Ww->cHW", wy, features.astype(np.float64), wx)


def latent_confidence(f1: np.ndarray, f2: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``-cos`` of each mask's mean upsampled features at t1 and t2 (AnyChange's ``_latent_match``)."""
    size = masks.shape[1:]
    u1, u2 = upsample(f1, size), upsample(f2, size)
    out = []
    for m in masks:
        a, b = u1[:, m].mean(axis=1), u2[:, m].mean(axis=1)
        out.append(-float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    return np.array(out)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mask IoU of every pair: ``[len(a), len(b)]``."""
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = (x | y).sum()
            out[i, j] = (x & y).sum() / union if union else 0.0
    return out


def box_nms(masks: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS of the masks' inclusive bounding boxes, highest score first."""

    def box(m: np.ndarray) -> tuple[int, int, int, int]:
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        return cols[0], rows[0], cols[-1], rows[-1]

    def overlap(p: tuple[int, ...], q: tuple[int, ...]) -> float:
        w = max(0, min(p[2], q[2]) - max(p[0], q[0]))
        h = max(0, min(p[3], q[3]) - max(p[1], q[1]))
        area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731  (torchvision: boxes without the +1)
        union = area(p) + area(q) - w * h
        return w * h / union if union > 0 else 0.0

    boxes = [box(m) for m in masks]
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(overlap(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(int(i))
    return keep


def anychange(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray, f1: np.ndarray, f2: np.ndarray, *,
              theta: float, nms: float = 0.7, max_area: float = 0.8, cap: int = 1000) -> np.ndarray:
    """AnyChange's change map: the union of the changed masks of both dates after NMS and the cap."""
    masks, scores = np.concatenate([m1, m2]), np.concatenate([s1, s2])
    small = masks.reshape(len(masks), m1.shape[1] * m1.shape[2]).mean(axis=1) < max_area
    masks, scores = masks[small], scores[small]
    conf = latent_confidence(f1, f2, masks) if len(masks) else np.zeros(0)
    hit = np.flatnonzero(conf > np.cos(np.radians(theta)))
    kept = hit[box_nms(masks[hit], scores[hit], nms)] if len(hit) else hit
    kept = kept[np.argsort(-conf[kept], kind="stable")[:cap]]
    out = np.zeros(m1.shape[1:], bool)
    for i in kept:
        out |= masks[i]
    return out


def inst_ceg(m1: np.ndarray, m2: np.ndarray, gate: float) -> tuple[np.ndarray, np.ndarray]:
    """Changed instances of each date (DynamicEarth's ``instance_ceg``): IoU sums at most ``gate``."""
    if len(m1) == 0:
        return np.zeros(0, bool), np.ones(len(m2), bool)
    if len(m2) == 0:
        return np.ones(len(m1), bool), np.zeros(0, bool)
    ious = iou_matrix(m2, m1)  # the release's ``maskUtils.iou(img2, img1)``
    return ious.sum(axis=0) <= gate, ious.sum(axis=1) <= gate


def union(masks: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """The pixels any of the masks covers."""
    return masks.any(axis=0) if len(masks) else np.zeros(size, bool)


def mask_class(scores: np.ndarray, mask: np.ndarray, prob_thd: float) -> int:
    """Argmax of the class scores ``[K, H, W]`` averaged over the mask; 0 below ``prob_thd``."""
    means = scores[:, mask].mean(axis=1)
    return 0 if means.max() < prob_thd else int(np.argmax(means))


def ucd_scm(levels1: list[np.ndarray], levels2: list[np.ndarray], p1: np.ndarray, p2: np.ndarray,
            score1: np.ndarray, score2: np.ndarray, size: tuple[int, int], *, channels: int = 160,
            min_area: int = 100) -> np.ndarray:
    """UCD-SCM's weighted distance of one tile: RFF, cosine distance, PSA (levels finest first)."""
    import torch  # the releases resize with OpenCV; torch's half-pixel bilinear is the same rule

    def resize(x: np.ndarray, to: tuple[int, ...]) -> np.ndarray:
        t = torch.from_numpy(x.astype(np.float32))[None]
        return torch.nn.functional.interpolate(t, size=tuple(to), mode="bilinear", align_corners=False)[0].numpy()

    def rff(levels: list[np.ndarray]) -> np.ndarray:
        sub = []
        for x in levels:
            y = x * x.mean(axis=(1, 2), keepdims=True)
            sub.append(y[list(range(0, y.shape[0], max(1, y.shape[0] // channels)))])
        c1, c2, c3 = sub
        c2 = c2 + resize(c3, c2.shape[1:])
        c1 = c1 + resize(c2, c1.shape[1:])
        return np.concatenate([resize(c3, size), resize(c2, size), resize(c1, size)])

    a, b = rff(levels1).astype(np.float64), rff(levels2).astype(np.float64)
    cos = (a * b).sum(axis=0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    distance = np.clip(1 - (cos * 0.5 + 0.5), 0, 1)
    score = np.zeros(size)
    for masks, target in ((p1, score1), (p2, score2)):
        for m in masks:
            if m.sum() > min_area:
                score = np.maximum(score, np.where(m, target[m].mean(), 0.0))
    weight = np.where(score >= 0.5, 1.0, 2 * score)
    return distance * weight
