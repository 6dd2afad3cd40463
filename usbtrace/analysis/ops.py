"""Operations per inference of the benchmark families, from their layer shapes.

One multiply-accumulate counts as two operations, the convention the Edge TPU's "4 TOPS" uses.
The shapes are the catalog's definitions of the families (``models/catalog.json``):

* ``conv_N``: a 2x2x3 input padded to 128x128x3, N 7x7 convolutions with 32 filters and SAME
  padding, then one 7x7 convolution with one filter and stride 128 down to a single value.
  Per inference: 2 x 128 x 128 x 7 x 7 x (3 x 32 + (N - 1) x 32 x 32) + 2 x 7 x 7 x 32; every
  layer after the first is the study's 128x128x7x7x32x32x2 = 1.644 GOP.
* ``dense_N``: 12 inputs, N Dense(100) layers, then Dense(1):
  2 x (12 x 100 + (N - 1) x 100 x 100 + 100).
* ``mobilenet_v1`` (1.0, 224) and ``mobilenet_v2`` (1.0, 224): the multiply-adds their papers
  give (569 M and 300 M), doubled. Approximate: published totals, not recomputed here.

Other models have no known count (None), and reports leave the column empty.
"""

from __future__ import annotations

CONV_SIDE = 128
CONV_KERNEL = 7
CONV_FILTERS = 32
CONV_IN_CHANNELS = 3
DENSE_INPUTS = 12
DENSE_UNITS = 100
MAC_OPS = 2

# published multiply-adds per inference (MobileNet v1 paper table 8; MobileNet v2 paper table 6)
_PUBLISHED_MACS = {("mobilenet_v1", 224): 569_000_000, ("mobilenet_v2", 224): 300_000_000}


def conv_layer_ops(in_channels: int, out_channels: int = CONV_FILTERS) -> int:
    return MAC_OPS * CONV_SIDE * CONV_SIDE * CONV_KERNEL * CONV_KERNEL * in_channels * out_channels


def ops_per_inference(family: str, size: int) -> int | None:
    """Operations of one inference of ``family`` at ``size`` (layers or pixels); None if unknown."""
    if size <= 0:
        return None
    if family == "conv":
        body = conv_layer_ops(CONV_IN_CHANNELS) + (size - 1) * conv_layer_ops(CONV_FILTERS)
        # the final stride-128 VALID convolution computes one output pixel
        return body + MAC_OPS * CONV_KERNEL * CONV_KERNEL * CONV_FILTERS
    if family == "dense":
        macs = DENSE_INPUTS * DENSE_UNITS + (size - 1) * DENSE_UNITS * DENSE_UNITS + DENSE_UNITS
        return MAC_OPS * macs
    published = _PUBLISHED_MACS.get((family, size))
    return None if published is None else MAC_OPS * published
