"""Full-integer int8 TFLite models of the study's benchmark families, written without TensorFlow.

Weights are random int8 with a fixed seed: USB traffic depends on shapes, not values. Every
activation uses one quantization (scale 2**-4, zero point 0) so that ops which need equal
input/output quantization (reshape, pooling, concatenation) get it; weights use scale 2**-8, so
bias scales (input scale x weight scale) are exact in float32, as TFLite's int8 kernels check.
Ops are those the Edge TPU compiler maps: PAD, CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
RESHAPE, ADD, AVERAGE_POOL_2D, CONCATENATION, SOFTMAX, LOGISTIC; batch size 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from usbtrace.models import tflite_writer as tw
from usbtrace.models.tflite_writer import GraphBuilder, Options, Quantization

ACT_SCALE = 2.0**-4
WEIGHT_SCALE = 2.0**-8
ACTIVATION = Quantization((ACT_SCALE,), (0,))
WEIGHTS = Quantization((WEIGHT_SCALE,), (0,))
BIAS = Quantization((ACT_SCALE * WEIGHT_SCALE,), (0,))
# softmax/logistic int8 outputs must use scale 1/256 and zero point -128
PROBABILITY = Quantization((1.0 / 256,), (-128,))

# the study's shapes
STUDY_INPUT = (1, 2, 2, 3)
CONV_SIDE, CONV_FILTERS, CONV_KERNEL = 128, 32, 7
DENSE_UNITS = 100
SEED = 20190622


class _Net:
    """Adds layers to a GraphBuilder, tracking the current tensor."""

    def __init__(self, g: GraphBuilder, seed: int) -> None:
        self.g = g
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}_{self.count}"

    def _weights(self, name: str, shape: tuple[int, ...], quant: Quantization = WEIGHTS) -> int:
        data = self.rng.integers(-127, 128, size=shape, dtype=np.int8)
        return self.g.tensor(f"{name}/weights", shape, tw.INT8, quant, data)

    def _bias(self, name: str, n: int) -> int:
        data = self.rng.integers(-256, 256, size=(n,), dtype=np.int32).astype("<i4")
        return self.g.tensor(f"{name}/bias", (n,), tw.INT32, BIAS, data)

    def _activation(
        self, name: str, shape: tuple[int, ...], quant: Quantization = ACTIVATION
    ) -> int:
        return self.g.tensor(name, shape, tw.INT8, quant)

    def pad(self, x: int, pads: list[tuple[int, int]]) -> int:
        name = self._name("pad")
        paddings = self.g.tensor(
            f"{name}/paddings", (len(pads), 2), tw.INT32, None, np.asarray(pads, dtype="<i4")
        )
        shape = tuple(d + lo + hi for d, (lo, hi) in zip(self.g.shape(x), pads, strict=True))
        out = self._activation(name, shape)
        self.g.op(tw.PAD, [x, paddings], [out], Options(tw.OPTIONS_PAD))
        return out

    def conv(
        self,
        x: int,
        filters: int,
        kernel: int,
        stride: int = 1,
        padding: int = tw.SAME,
        act: int = tw.ACT_RELU6,
    ) -> int:
        name = self._name("conv")
        _, h, w, c = self.g.shape(x)
        weights = self._weights(name, (filters, kernel, kernel, c))
        bias = self._bias(name, filters)
        oh, ow = _out_size(h, kernel, stride, padding), _out_size(w, kernel, stride, padding)
        out = self._activation(name, (1, oh, ow, filters))
        options = Options(
            tw.OPTIONS_CONV_2D,
            {
                0: ("int8", padding),
                1: ("int32", stride),
                2: ("int32", stride),
                3: ("int8", act),
                4: ("int32", 1),
                5: ("int32", 1),
            },
        )
        self.g.op(tw.CONV_2D, [x, weights, bias], [out], options)
        return out

    def depthwise(self, x: int, stride: int = 1, kernel: int = 3, act: int = tw.ACT_RELU6) -> int:
        name = self._name("depthwise")
        _, h, w, c = self.g.shape(x)
        weights = self._weights(
            name, (1, kernel, kernel, c), Quantization((WEIGHT_SCALE,), (0,), 3)
        )
        bias = self._bias(name, c)
        oh, ow = _out_size(h, kernel, stride, tw.SAME), _out_size(w, kernel, stride, tw.SAME)
        out = self._activation(name, (1, oh, ow, c))
        options = Options(
            tw.OPTIONS_DEPTHWISE,
            {
                0: ("int8", tw.SAME),
                1: ("int32", stride),
                2: ("int32", stride),
                3: ("int32", 1),
                4: ("int8", act),
                5: ("int32", 1),
                6: ("int32", 1),
            },
        )
        self.g.op(tw.DEPTHWISE_CONV_2D, [x, weights, bias], [out], options)
        return out

    def dense(self, x: int, units: int, act: int = tw.ACT_RELU) -> int:
        name = self._name("dense")
        inputs = self.g.shape(x)[-1]
        weights = self._weights(name, (units, inputs))
        bias = self._bias(name, units)
        out = self._activation(name, (1, units))
        self.g.op(
            tw.FULLY_CONNECTED,
            [x, weights, bias],
            [out],
            Options(tw.OPTIONS_FULLY_CONNECTED, {0: ("int8", act)}),
        )
        return out

    def reshape(self, x: int, shape: tuple[int, ...]) -> int:
        name = self._name("reshape")
        target = self.g.tensor(
            f"{name}/shape", (len(shape),), tw.INT32, None, np.asarray(shape, dtype="<i4")
        )
        out = self._activation(name, shape, self.g.tensors[x].quantization or ACTIVATION)
        self.g.op(
            tw.RESHAPE,
            [x, target],
            [out],
            Options(tw.OPTIONS_RESHAPE, {0: ("int32_vector", tuple(shape))}),
        )
        return out

    def add(self, a: int, b: int) -> int:
        out = self._activation(self._name("add"), self.g.shape(a))
        self.g.op(tw.ADD, [a, b], [out], Options(tw.OPTIONS_ADD, {0: ("int8", tw.ACT_NONE)}))
        return out

    def average_pool(self, x: int) -> int:
        _, h, w, c = self.g.shape(x)
        out = self._activation(self._name("avgpool"), (1, 1, 1, c))
        options = Options(
            tw.OPTIONS_POOL_2D,
            {
                0: ("int8", tw.VALID),
                1: ("int32", 1),
                2: ("int32", 1),
                3: ("int32", w),
                4: ("int32", h),
                5: ("int8", tw.ACT_NONE),
            },
        )
        self.g.op(tw.AVERAGE_POOL_2D, [x], [out], options)
        return out

    def concat(self, xs: list[int], axis: int) -> int:
        shapes = [self.g.shape(x) for x in xs]
        shape = list(shapes[0])
        shape[axis] = sum(s[axis] for s in shapes)
        out = self._activation(self._name("concat"), tuple(shape))
        self.g.op(
            tw.CONCATENATION,
            xs,
            [out],
            Options(tw.OPTIONS_CONCATENATION, {0: ("int32", axis), 1: ("int8", tw.ACT_NONE)}),
        )
        return out

    def softmax(self, x: int) -> int:
        out = self._activation(self._name("softmax"), self.g.shape(x), PROBABILITY)
        self.g.op(tw.SOFTMAX, [x], [out], Options(tw.OPTIONS_SOFTMAX, {0: ("float32", 1.0)}))
        return out

    def logistic(self, x: int) -> int:
        out = self._activation(self._name("logistic"), self.g.shape(x), PROBABILITY)
        self.g.op(tw.LOGISTIC, [x], [out])
        return out


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    if padding == tw.SAME:
        return -(-size // stride)
    return (size - kernel) // stride + 1


def _start(description: str, shape: tuple[int, ...], seed: int) -> tuple[_Net, int]:
    net = _Net(GraphBuilder(description), seed)
    return net, net.g.tensor("input_1", shape, tw.INT8, ACTIVATION)


def build_conv(layers: int, seed: int = SEED) -> bytes:
    """conv_N: a 2x2x3 input padded to 128x128x3, N 7x7 convolutions with 32 filters, then one
    7x7 convolution with stride 128 that shrinks the result to a single value (tiny I/O)."""
    net, x = _start(f"usbtrace conv_{layers}", STUDY_INPUT, seed)
    inp = x
    grow = CONV_SIDE - STUDY_INPUT[1]
    x = net.pad(x, [(0, 0), (0, grow), (0, grow), (0, 0)])
    for _ in range(layers):
        x = net.conv(x, CONV_FILTERS, CONV_KERNEL)
    x = net.conv(x, 1, CONV_KERNEL, stride=CONV_SIDE, padding=tw.VALID, act=tw.ACT_NONE)
    return net.g.finish([inp], [x])


def build_dense(layers: int, seed: int = SEED) -> bytes:
    """dense_N: a 2x2x3 input flattened to 12 values, N Dense(100) layers, then Dense(1)."""
    net, x = _start(f"usbtrace dense_{layers}", STUDY_INPUT, seed)
    inp = x
    x = net.reshape(x, (1, int(np.prod(STUDY_INPUT))))
    for _ in range(layers):
        x = net.dense(x, DENSE_UNITS)
    x = net.dense(x, 1, act=tw.ACT_NONE)
    return net.g.finish([inp], [x])


# MobileNet v1 depthwise-separable blocks: (pointwise filters, depthwise stride)
_V1_BLOCKS = (
    [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    + [(512, 1)] * 5
    + [
        (1024, 2),
        (1024, 1),
    ]
)
CLASSES = 1001


def _mobilenet_v1_features(net: _Net, x: int, blocks: int = len(_V1_BLOCKS)) -> list[int]:
    x = net.conv(x, 32, 3, stride=2)
    features = []
    for filters, stride in _V1_BLOCKS[:blocks]:
        x = net.depthwise(x, stride)
        x = net.conv(x, filters, 1)
        features.append(x)
    return features


def build_mobilenet_v1(resolution: int = 224, seed: int = SEED) -> bytes:
    """MobileNet v1 1.0: 13 depthwise-separable blocks, global average pool, 1x1 classifier."""
    net, inp = _start(f"usbtrace mobilenet_v1 {resolution}", (1, resolution, resolution, 3), seed)
    x = _mobilenet_v1_features(net, inp)[-1]
    x = net.average_pool(x)
    x = net.conv(x, CLASSES, 1, act=tw.ACT_NONE)
    x = net.reshape(x, (1, CLASSES))
    return net.g.finish([inp], [net.softmax(x)])


# MobileNet v2 inverted residual stages: (expansion, output channels, repeats, first stride)
_V2_STAGES = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def build_mobilenet_v2(resolution: int = 224, seed: int = SEED) -> bytes:
    """MobileNet v2 1.0: 17 inverted residual blocks (ADD where shapes match), 1x1 to 1280,
    global average pool, 1x1 classifier."""
    net, inp = _start(f"usbtrace mobilenet_v2 {resolution}", (1, resolution, resolution, 3), seed)
    x = net.conv(inp, 32, 3, stride=2)
    for expansion, channels, repeats, first_stride in _V2_STAGES:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            block_in = x
            if expansion != 1:
                x = net.conv(x, net.g.shape(x)[-1] * expansion, 1)
            x = net.depthwise(x, stride)
            x = net.conv(x, channels, 1, act=tw.ACT_NONE)
            if stride == 1 and net.g.shape(block_in) == net.g.shape(x):
                x = net.add(block_in, x)
    x = net.conv(x, 1280, 1)
    x = net.average_pool(x)
    x = net.conv(x, CLASSES, 1, act=tw.ACT_NONE)
    x = net.reshape(x, (1, CLASSES))
    return net.g.finish([inp], [net.softmax(x)])


SSD_CLASSES = 91
SSD_RESOLUTION = 300
# extra feature layers after the backbone: (1x1 filters, 3x3 stride-2 filters)
_SSD_EXTRAS = [(256, 512), (128, 256), (128, 256), (64, 128)]


def build_ssd_mobilenet_v1(resolution: int = SSD_RESOLUTION, seed: int = SEED) -> bytes:
    """SSD MobileNet v1 (COCO shapes): backbone features at 19x19 and 10x10 plus four extra
    layers, a box and a class predictor per feature map, concatenated to [1, 1917, 4] boxes and
    [1, 1917, 91] class scores. The CPU-only TFLite_Detection_PostProcess op is left out: it never
    runs on the Edge TPU, so it moves no USB bytes."""
    net, inp = _start(
        f"usbtrace ssd_mobilenet_v1 {resolution}", (1, resolution, resolution, 3), seed
    )
    backbone = _mobilenet_v1_features(net, inp)
    maps = [backbone[10], backbone[12]]
    x = maps[-1]
    for squeeze, expand in _SSD_EXTRAS:
        x = net.conv(x, squeeze, 1)
        x = net.conv(x, expand, 3, stride=2)
        maps.append(x)
    boxes, scores = [], []
    for i, feature in enumerate(maps):
        anchors = 3 if i == 0 else 6
        _, h, w, _ = net.g.shape(feature)
        b = net.conv(feature, anchors * 4, 1, act=tw.ACT_NONE)
        boxes.append(net.reshape(b, (1, h * w * anchors, 4)))
        s = net.conv(feature, anchors * SSD_CLASSES, 1, act=tw.ACT_NONE)
        scores.append(net.reshape(s, (1, h * w * anchors, SSD_CLASSES)))
    box_out = net.concat(boxes, 1)
    score_out = net.logistic(net.concat(scores, 1))
    return net.g.finish([inp], [box_out, score_out])


BUILDERS: dict[str, Callable[[int], bytes]] = {
    "conv": build_conv,
    "dense": build_dense,
    "mobilenet_v1": build_mobilenet_v1,
    "mobilenet_v2": build_mobilenet_v2,
    "ssd_mobilenet_v1": build_ssd_mobilenet_v1,
}


def build_model(family: str, size: int) -> bytes:
    """TFLite bytes for a catalog family; ``size`` is the layer count or the input resolution."""
    try:
        builder = BUILDERS[family]
    except KeyError:
        raise ValueError(f"no builder for model family {family!r}") from None
    return builder(size)
