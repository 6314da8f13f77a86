"""Write a camera-like DNG from an RGB photo (for the sample library and the tests).

The photo becomes the linear sensor data of an RGGB Bayer sensor whose colour space is linear sRGB
(``ColorMatrix1`` = XYZ to sRGB, neutral white balance), so LibRaw's decode of the DNG looks like the
photo. With ``preview`` the DNG is laid out as cameras and Adobe's converter write it: IFD 0 holds the
JPEG preview (``NewSubfileType`` 1) and the metadata, the raw data sits in a SubIFD. Without, IFD 0 is
the raw data and there is no embedded image at all (LibRaw must demosaic to show anything).

pidng (https://github.com/schoolpost/PiDNG) writes the TIFF structure. Two of its limits shape this
module: its ``RAW2DNG`` writes one IFD (no preview), and its IFD-typed tags fail to encode on Python 3
(so ``_IFDTag`` points to a sub-IFD itself); its LJ92 compressor does not build for Python >= 3.10,
so the raw data is stored uncompressed, 16 bits a sample.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from photodedup.errors import BadInputError

# XYZ (D65) -> linear sRGB: the "camera" of these DNGs sees linear sRGB.
_XYZ_TO_SRGB = ((3.2404542, -1.5371385, -0.4985314), (-0.9692660, 1.8760108, 0.0415560),
                (0.0556434, -0.2040259, 1.0572252))
WHITE_LEVEL = 16383  # 14-bit sensor values, stored in 16-bit samples


def _linear_lut() -> np.ndarray:
    """sRGB 8-bit code -> linear sensor value (0..WHITE_LEVEL)."""
    srgb = np.arange(256) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return np.round(linear * WHITE_LEVEL).astype("<u2")


def bayer_mosaic(photo: Image.Image) -> np.ndarray:
    """The RGGB mosaic (``uint16 [H, W]``, even sizes) a linear-sRGB sensor would record."""
    rgb = np.asarray(photo.convert("RGB"))
    height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    rgb = rgb[:height, :width]
    lut = _linear_lut()
    mosaic = np.empty((height, width), dtype="<u2")
    mosaic[0::2, 0::2] = lut[rgb[0::2, 0::2, 0]]
    mosaic[0::2, 1::2] = lut[rgb[0::2, 1::2, 1]]
    mosaic[1::2, 0::2] = lut[rgb[1::2, 0::2, 1]]
    mosaic[1::2, 1::2] = lut[rgb[1::2, 1::2, 2]]
    return mosaic


def require_pidng() -> None:
    """Raise a clear error when pidng (the ``bench`` and ``dev`` extras) is not installed."""
    try:
        import pidng  # noqa: F401
    except ImportError as error:
        raise BadInputError("writing DNG files (the sample library's RAW+JPEG pairs) needs pidng",
                            hint="pip install 'photodedup[bench]' (or: pip install pidng)") from error


def write_dng(path: Path | str, photo: Image.Image, *, make: str = "Canon", model: str = "EOS R6",
              taken: datetime | None = None, orientation: int = 1, preview: int | None = 1620,
              preview_quality: int = 90) -> Path:
    """Write ``photo`` as a DNG; ``preview`` is the longest side of the embedded JPEG (None: no preview).

    ``orientation`` is the EXIF orientation of the shot: the sensor data (and the preview) are stored as
    the sensor saw them, and a reader turns them by this tag, as with every camera.
    """
    require_pidng()
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation
    from pidng.dng import DNG, Tag, Type, dngIFD, dngTag

    class _IFDTag(dngTag):
        """A tag whose value is the offset of a sub-IFD (pidng's own Type.IFD does not encode)."""

        def __init__(self, tag, ifd) -> None:
            super().__init__((tag[0], Type.Long), [0])
            self.subIFD = ifd

    mosaic = bayer_mosaic(photo)
    height, width = mosaic.shape
    raw_bytes = mosaic.tobytes()
    when = taken.strftime("%Y:%m:%d %H:%M:%S") if taken else None

    dng = DNG()
    dng.ImageDataStrips.append(raw_bytes)
    raw_offsets = dngTag(Tag.TileOffsets, [0])
    raw_ifd = dngIFD()
    raw_ifd.tags += [
        dngTag(Tag.NewSubfileType, [0]), dngTag(Tag.ImageWidth, [width]), dngTag(Tag.ImageLength, [height]),
        dngTag(Tag.BitsPerSample, [16]), dngTag(Tag.Compression, [1]),
        dngTag(Tag.PhotometricInterpretation, [PhotometricInterpretation.Color_Filter_Array]),
        dngTag(Tag.SamplesPerPixel, [1]), dngTag(Tag.PlanarConfiguration, [1]),
        dngTag(Tag.TileWidth, [width]), dngTag(Tag.TileLength, [height]), raw_offsets,
        dngTag(Tag.TileByteCounts, [len(raw_bytes)]), dngTag(Tag.CFARepeatPatternDim, [2, 2]),
        dngTag(Tag.CFAPattern, CFAPattern.RGGB), dngTag(Tag.BlackLevel, [0]), dngTag(Tag.WhiteLevel, [WHITE_LEVEL]),
    ]
    exif_ifd = dngIFD()
    exif_ifd.tags.append(dngTag(Tag.DateTimeOriginal, when or ""))
    times = [dngTag(Tag.DateTime, when), _IFDTag(Tag.EXIF_IFD, exif_ifd)] if when else []  # taken=None: none
    metadata = [
        dngTag(Tag.Make, make), dngTag(Tag.Model, model), dngTag(Tag.UniqueCameraModel, f"{make} {model}"),
        dngTag(Tag.Orientation, [orientation]), *times, dngTag(Tag.Software, "photodedup"),
        dngTag(Tag.DNGVersion, DNGVersion.V1_4), dngTag(Tag.DNGBackwardVersion, DNGVersion.V1_0),
        dngTag(Tag.ColorMatrix1, [(round(v * 10000), 10000) for row in _XYZ_TO_SRGB for v in row]),
        dngTag(Tag.CalibrationIlluminant1, [CalibrationIlluminant.D65]),
        dngTag(Tag.AsShotNeutral, [(1, 1), (1, 1), (1, 1)]),
    ]
    strips = [(raw_offsets, 0)]
    if preview is None:
        raw_ifd.tags += metadata
        dng.IFDs.append(raw_ifd)
    else:
        small = photo.convert("RGB")
        small.thumbnail((preview, preview), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=preview_quality)
        jpeg = buffer.getvalue()
        dng.ImageDataStrips.append(jpeg)
        preview_offsets = dngTag(Tag.StripOffsets, [0])
        ifd0 = dngIFD()
        ifd0.tags += metadata + [
            dngTag(Tag.NewSubfileType, [1]), dngTag(Tag.ImageWidth, [small.width]),
            dngTag(Tag.ImageLength, [small.height]), dngTag(Tag.BitsPerSample, [8, 8, 8]),
            dngTag(Tag.Compression, [7]), dngTag(Tag.PhotometricInterpretation, [6]),  # JPEG, YCbCr
            dngTag(Tag.SamplesPerPixel, [3]), dngTag(Tag.PlanarConfiguration, [1]),
            dngTag(Tag.RowsPerStrip, [small.height]), preview_offsets, dngTag(Tag.StripByteCounts, [len(jpeg)]),
            _IFDTag(Tag.SubIFD, raw_ifd),
        ]
        dng.IFDs.append(ifd0)
        strips.append((preview_offsets, 1))
    buffer = bytearray(dng.dataLen())  # also lays out the strips: StripOffsets is known from here
    for tag, index in strips:
        tag.setValue([dng.StripOffsets[index]])
    dng.setBuffer(buffer)
    dng.write()
    path = Path(path)
    path.write_bytes(buffer)
    return path
