"""Grey-scale images for training and held-out evaluation: scikit-image's bundled images or a folder of PNGs.

Images become float arrays with intensities in ``[0, 1]``. Every set is stored as one padded stack (an
``ImageBank``) with each image's true height and width, so that random crops are drawn inside a compiled
program with ``lax.dynamic_slice``.

The bundled images are those that ship inside scikit-image's wheel (no download): a colour image is converted to
grey with :func:`skimage.color.rgb2gray`, and every image is rescaled (anti-aliased) so that its shorter side is
``BUNDLED_SIDE`` pixels, which keeps the detail of a 64 x 64 patch comparable across images.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np

from du_framework.errors import ProblemDataError

__all__ = ["TRAINING_IMAGES", "HELD_OUT_IMAGES", "BUNDLED_SIDE", "ImageBank", "bundled_images", "folder_images",
           "read_png", "MAX_SIDE", "MAX_FILE_BYTES"]

#: scikit-image's bundled images used for training (all ship inside the wheel).
TRAINING_IMAGES = ("astronaut", "brick", "chelsea", "coffee", "grass", "gravel", "hubble_deep_field", "moon",
                   "page", "rocket", "text", "retina")
#: the held-out images: evaluation draws its patches from these only.
HELD_OUT_IMAGES = ("camera", "coins")
#: the shorter side of a bundled image after rescaling.
BUNDLED_SIDE = 256
#: the largest side a user's image may have.
MAX_SIDE = 4096
#: the largest PNG file read.
MAX_FILE_BYTES = 64 * 2 ** 20


@dataclasses.dataclass(frozen=True)
class ImageBank:
    """Images padded into one stack: ``pixels`` ``(count, height, width)`` float32 in ``[0, 1]``, and each
    image's true ``shape`` ``(count, 2)`` int32 (rows, columns); ``names`` says where each came from."""

    pixels: np.ndarray
    shapes: np.ndarray
    names: tuple[str, ...]


def _stack(images: list[np.ndarray], names: list[str]) -> ImageBank:
    height = max(image.shape[0] for image in images)
    width = max(image.shape[1] for image in images)
    pixels = np.zeros((len(images), height, width), np.float32)
    for i, image in enumerate(images):
        pixels[i, :image.shape[0], :image.shape[1]] = image
    shapes = np.array([image.shape for image in images], np.int32)
    return ImageBank(pixels, shapes, tuple(names))


def _grey(image: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.util import img_as_float

    image = img_as_float(image)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = rgba2rgb(image)
    if image.ndim == 3:
        image = rgb2gray(image)
    return np.clip(image, 0.0, 1.0)


def bundled_images(names: tuple[str, ...]) -> ImageBank:
    """scikit-image's bundled images ``names``, grey, rescaled so the shorter side is :data:`BUNDLED_SIDE`."""
    from skimage import data
    from skimage.transform import rescale

    images = []
    for name in names:
        image = _grey(getattr(data, name)())
        scale = BUNDLED_SIDE / min(image.shape)
        images.append(rescale(image, scale, anti_aliasing=True) if scale < 1 else image)
    return _stack(images, list(names))


def read_png(path: Path) -> np.ndarray:
    """One PNG file as a grey float64 image in ``[0, 1]``.

    Raises:
        ProblemDataError: the file is missing, too large, not a PNG image, or unreadable (naming it).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except OSError as error:
        raise ProblemDataError(f"image file {str(path)!r} cannot be read ({error.strerror or error})") from None
    if size > MAX_FILE_BYTES:
        raise ProblemDataError(f"image file {str(path)!r} is {size} bytes; at most {MAX_FILE_BYTES} are read")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as handle:
                if handle.format != "PNG":
                    raise ProblemDataError(f"image file {str(path)!r} is not a PNG image (it reads as "
                                           f"{handle.format or 'an unknown format'}); give PNG files")
                width, height = handle.size
                if max(width, height) > MAX_SIDE:
                    raise ProblemDataError(f"image file {str(path)!r} is {width} x {height} pixels; the largest "
                                           f"side allowed is {MAX_SIDE}")
                handle.load()
                if handle.mode.startswith("I"):  # 16-bit grey: full scale is 65535
                    array = np.asarray(handle, np.float64) / 65535.0
                elif handle.mode == "F":
                    array = np.asarray(handle, np.float64)
                elif handle.mode == "L":
                    array = np.asarray(handle)
                else:  # palette, grey with alpha, RGB, RGBA, ...: through RGB(A), then to grey
                    array = np.asarray(handle.convert("RGBA" if "A" in handle.getbands() else "RGB"))
    except ProblemDataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as error:
        raise ProblemDataError(f"image file {str(path)!r} is not a readable PNG image ({error})") from None
    return _grey(array)


def folder_images(folder: str, *, min_side: int) -> tuple[ImageBank, ImageBank]:
    """The PNG files of ``folder`` (``*.png``, in name order), split into training and held-out images: the last
    quarter of the files (at least one) is held out.

    Raises:
        ProblemDataError: the folder is missing or holds fewer than two PNG files; a file is not a readable PNG
            image, or is smaller than ``min_side`` on a side (each naming the file).
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ProblemDataError(f"problem.images = {folder!r} is not a folder; give \"bundled\" or a folder of "
                               f"PNG files")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if len(files) < 2:
        found = "no PNG file" if not files else "one PNG file"
        raise ProblemDataError(f"image folder {folder!r} holds {found}; it needs at least two (the last quarter "
                               f"of them, by name, is held out for evaluation)")
    images = []
    for file in files:
        image = read_png(file)
        if min(image.shape) < min_side:
            raise ProblemDataError(f"image file {str(file)!r} is {image.shape[1]} x {image.shape[0]} pixels; "
                                   f"patches of {min_side} x {min_side} need at least that on each side (lower "
                                   f"problem.size or leave the file out)")
        images.append(image)
    held = max(1, math.ceil(len(files) / 4))
    names = [file.name for file in files]
    return _stack(images[:-held], names[:-held]), _stack(images[-held:], names[-held:])
