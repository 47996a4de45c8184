"""EDQA: difference-queried window attention guided by both dates, plus a MoE FFN.

For one pyramid level with difference features ``D`` and date features ``F_t``::

    g_t   = LN_t(conv1x1_t(cat(D, F_t)))                 guidance of date t
    A_t   = WindowAttention(q, k from LN(D); v from g_t)  9x9 windows, shared weights
    out   = D + merge(cat(A_1, A_2))                     merge = 2 x (conv3x3, GN, ReLU)
    out   = out + MoEFFN(LN(out))

The attention uses a learned relative position bias per head (Swin style). The
level size must be divisible by the window (144, 72, 36 and 18 all are by 9).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s2c_batch.kernels.models.cach.common import double_conv_norm_relu, grid, tokens


def relative_position_index(window: int) -> torch.Tensor:
    """Index into the bias table for every pair of positions in a window.

    Args:
        window: window side ``w``.

    Returns:
        int64 ``[w*w, w*w]``: for query ``i = (yi, xi)`` and key ``j = (yj, xj)``,
        ``(yi - yj + w - 1) * (2w - 1) + (xi - xj + w - 1)``.
    """
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + window - 1
    dx = xs[:, None] - xs[None, :] + window - 1
    return dy * (2 * window - 1) + dx


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """Cut ``[B, H, W, C]`` into windows ``[B * H/w * W/w, w*w, C]`` (row-major windows)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_merge(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``[B * nW, w*w, C]`` to ``[B, H, W, C]``."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((height // window) * (width // window))
    x = windows.view(b, height // window, width // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, height, width, c)


class WindowAttention(nn.Module):
    """Multi-head attention inside windows, queries/keys from one input, values from others."""

    rel_pos_index: torch.Tensor

    def __init__(self, *, dim: int, window: int = 9, num_heads: int = 8) -> None:
        """Build the module.

        Args:
            dim: token channels, divisible by ``num_heads``.
            window: window side.
            num_heads: attention heads.
        """
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.window = window
        self.num_heads = num_heads
        self.rel_pos_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.rel_pos_bias_table, std=0.02)
        # Persistent so that the state dict matches the authors' layout entry for entry.
        self.register_buffer("rel_pos_index", relative_position_index(window))
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Attend within windows.

        Args:
            x: query/key windows ``[Bw, N, C]`` (``N = window**2``).
            values: value windows of T sources ``[T, Bw, N, C]``; the attention
                weights are computed once and applied to each source.

        Returns:
            ``[T, Bw, N, C]``.
        """
        bw, n, c = x.shape
        heads, head_dim = self.num_heads, c // self.num_heads
        q, k = self.qk(x).view(bw, n, 2, heads, head_dim).permute(2, 0, 3, 1, 4)
        v = self.v(values).view(*values.shape[:2], n, heads, head_dim).transpose(2, 3)
        bias = self.rel_pos_bias_table[self.rel_pos_index.view(-1)].view(n, n, heads).permute(2, 0, 1)
        t = values.shape[0]
        out = F.scaled_dot_product_attention(
            q.unsqueeze(0).expand(t, -1, -1, -1, -1),
            k.unsqueeze(0).expand(t, -1, -1, -1, -1),
            v,
            attn_mask=bias.to(q.dtype),
        )
        return self.proj(out.transpose(2, 3).reshape(t, bw, n, c))


class MoEFFN(nn.Module):
    """Mixture-of-experts FFN with the authors' channel-wise softmax gate.

    ``out = sum_e softmax(gate(x)) * expert_e(x)``, each expert
    ``Linear(d, hidden) -> GELU -> Linear(hidden, d)``. The gate is a
    ``Linear(d, d)`` whose softmax runs over the channels (not over the experts),
    exactly as in the published code.
    """

    def __init__(self, *, dim: int, hidden_dim: int, num_experts: int = 4) -> None:
        """Build the module.

        Args:
            dim: token channels.
            hidden_dim: hidden width of each expert.
            num_experts: number of experts.
        """
        super().__init__()
        self.gate = nn.Linear(dim, dim)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))
            for _ in range(num_experts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the FFN to tokens ``[..., dim]``; returns the same shape."""
        weights = torch.softmax(self.gate(x), dim=-1)
        out = weights * self.experts[0](x)
        for expert in self.experts[1:]:
            out = out + weights * expert(x)
        return out


class EDQA(nn.Module):
    """Refines the difference features of one level with guidance from both dates."""

    def __init__(self, *, channels: int, num_heads: int = 8, window: int = 9, num_experts: int = 4) -> None:
        """Build the module.

        Args:
            channels: channels of the level, divisible by 8 and by ``num_heads``.
            num_heads: attention heads.
            window: attention window side.
            num_experts: experts of the FFN (hidden width ``3 * channels``).
        """
        super().__init__()
        self.window = window
        self.norm_diff = nn.LayerNorm(channels)
        self.norm_ffn = nn.LayerNorm(channels)
        self.attention = WindowAttention(dim=channels, window=window, num_heads=num_heads)
        self.guide_t1 = nn.Conv2d(2 * channels, channels, kernel_size=1)
        self.guide_t2 = nn.Conv2d(2 * channels, channels, kernel_size=1)
        self.norm_guide_t1 = nn.LayerNorm(channels)
        self.norm_guide_t2 = nn.LayerNorm(channels)
        self.merge = double_conv_norm_relu(2 * channels, channels)
        self.ffn = MoEFFN(dim=channels, hidden_dim=3 * channels, num_experts=num_experts)

    def forward(self, diff: torch.Tensor, feat_t1: torch.Tensor, feat_t2: torch.Tensor) -> torch.Tensor:
        """Refine the difference features.

        Args:
            diff: BDFM output ``D`` ``[B, C, H, W]``, ``H`` and ``W`` divisible by the window.
            feat_t1: t1 level features ``[B, C, H, W]``.
            feat_t2: t2 level features ``[B, C, H, W]``.

        Returns:
            ``[B, C, H, W]``.
        """
        b, c, h, w = diff.shape
        if h % self.window or w % self.window:
            raise ValueError(
                f"EDQA level size {h}x{w} is not divisible by the window {self.window}; "
                "use a backbone input whose token grid is a multiple of 18 (e.g. 504 or 252)"
            )
        g1 = self.norm_guide_t1(tokens(self.guide_t1(torch.cat([diff, feat_t1], dim=1))))
        g2 = self.norm_guide_t2(tokens(self.guide_t2(torch.cat([diff, feat_t2], dim=1))))
        shortcut = tokens(diff)
        queries = window_partition(self.norm_diff(shortcut).view(b, h, w, c), self.window)
        values = torch.stack(
            [
                window_partition(g1.view(b, h, w, c), self.window),
                window_partition(g2.view(b, h, w, c), self.window),
            ]
        )
        attended = self.attention(queries, values)  # [2, Bw, N, C]
        a1 = window_merge(attended[0], self.window, h, w).permute(0, 3, 1, 2)
        a2 = window_merge(attended[1], self.window, h, w).permute(0, 3, 1, 2)
        out = shortcut + tokens(self.merge(torch.cat([a1, a2], dim=1)))
        out = out + self.ffn(self.norm_ffn(out))
        return grid(out, h, w)
