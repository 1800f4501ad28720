"""Natural photos for ImageNet models (MobileNetV2): scikit-image's bundled sample images.

No data set ships with the ONNX zoo's MobileNetV2, and the machine has no network, so the
photos come from ``skimage.data`` (bundled in the wheel, no download). Each source image is
prepared the standard ImageNet evaluation way: resize the shorter side to 256, crop 224x224,
scale to 0..1, normalise with the ImageNet mean and std, NCHW float32. Grey images are
repeated over the three channels.

Several *views* of one source give more frames than there are photos: ``center`` (the
standard crop), ``flip`` (its mirror image) and ``corner`` (the top-left 224x224 of the
256-short-side image). Views of one photo are correlated, so calibration and held-out sets
split by *source*: ``TUNE_SOURCES`` and ``TEST_SOURCES`` share no photo.

    from samples.photos import imagenet_photos, TEST_SOURCES
    x, names = imagenet_photos(TEST_SOURCES, views=("center", "flip"))

Requires scikit-image (a dev extra).
"""
from __future__ import annotations

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

# Photographs only (no synthetic images such as colorwheel, logo or checkerboard).
COLOR = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
         "immunohistochemistry", "retina", "motorcycle_left", "motorcycle_right")
GREY = ("camera", "coins", "moon", "grass", "gravel", "brick", "clock", "cell")
SOURCES = COLOR + GREY
# Alternate colour and grey so that both halves see both kinds.
TUNE_SOURCES = SOURCES[0::2]
TEST_SOURCES = SOURCES[1::2]
VIEWS = ("center", "flip", "corner")


def _load(name: str) -> np.ndarray:
    """The source image as float64 HxWx3 in 0..1."""
    import skimage.data as data
    from skimage.util import img_as_float
    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(data, name)()
    img = img_as_float(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3]


def _prepare(img: np.ndarray, view: str) -> np.ndarray:
    from skimage.transform import resize
    h, w = img.shape[:2]
    k = 256.0 / min(h, w)
    nh, nw = max(224, round(h * k)), max(224, round(w * k))
    img = resize(img, (nh, nw), order=1, anti_aliasing=True, preserve_range=True)
    if view == "corner":
        top, left = 0, 0
    else:
        top, left = (nh - 224) // 2, (nw - 224) // 2
    crop = img[top:top + 224, left:left + 224]
    if view == "flip":
        crop = crop[:, ::-1]
    x = (crop.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def imagenet_photos(sources=SOURCES, views=("center",)):
    """Frames ``x`` [n, 3, 224, 224] float32 and their names ``"<source>:<view>"``.

    Ordered view-major (every source's first view, then every source's second ...), so a
    prefix of the frames spreads over the sources.
    """
    for v in views:
        if v not in VIEWS:
            raise ValueError(f"unknown view {v!r}; views are {', '.join(VIEWS)}")
    images = {s: _load(s) for s in sources}
    xs, names = [], []
    for v in views:
        for s in sources:
            xs.append(_prepare(images[s], v))
            names.append(f"{s}:{v}")
    return np.stack(xs), names
