"""The CPU attention for left-padded batches (workbench.models.attention) against transformers' SDPA."""

from __future__ import annotations

import torch

from workbench.models.attention import padded_sdpa


def test_padded_attention_sees_what_each_row_sees_alone():
    """The attention used for left-padded batches gives every real position what transformers' SDPA gives the same
    row without padding (prefill and a decode step, grouped-query heads)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    class Layer(torch.nn.Module):
        num_key_value_groups, is_causal, sliding_window = 3, True, None

    layer = Layer().eval()
    torch.manual_seed(0)
    lengths, width, scale = [5, 9, 7], 9, 0.125
    q, k, v = torch.randn(3, 6, width, 16), torch.randn(3, 2, width, 16), torch.randn(3, 2, width, 16)
    keys = torch.zeros(3, 1, width, width, dtype=torch.bool)
    for b, n in enumerate(lengths):
        keys[b, :, :, width - n:] = True  # left padding: the first width - n keys are padding
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    prefill, _ = padded_sdpa(layer, q, k, v, keys & causal, scaling=scale)  # (B, T, H, D)
    step, _ = padded_sdpa(layer, q[:, :, -1:], k, v, keys[:, :, -1:], scaling=scale)
    for b, n in enumerate(lengths):
        alone, _ = sdpa_attention_forward(layer, q[b:b + 1, :, -n:], k[b:b + 1, :, -n:], v[b:b + 1, :, -n:], None,
                                          scaling=scale)
        torch.testing.assert_close(prefill[b, -n:], alone[0])
        torch.testing.assert_close(step[b, 0], alone[0, -1])
        assert not prefill[b, : width - n].any()  # padded positions give zeros, never NaN
