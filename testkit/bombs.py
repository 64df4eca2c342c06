"""Decode bombs for the pipelines' input path: small files that declare huge images.

- ``declared``: one native (uncompressed) image whose header says 65535 x 65535 while its
  PixelData holds the original few KB;
- ``rle``: every image RLE Lossless at the codec's maximum ratio (runs of 128 equal bytes,
  two bytes each: 64:1), declaring hundreds of MB in total in a few MB of files.

Built at test time from the synthetic studies each pipeline accepts, so that only the pixel
data is hostile: headers, modality, geometry and views are those of a valid study.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from dicomnode.synthetic import brain_mr, chest_ct, mammography, write_study

__all__ = ["BOMB_KINDS", "PIPELINES", "bomb_study", "declared_huge", "rle_bomb", "rle_frame"]

#: Pipeline name -> image size of its RLE bomb (each image of the study gets it).
PIPELINES: dict[str, int] = {"lung_nodule": 4096, "brain_lesion": 4096, "mammo_score": 8192}
BOMB_KINDS = ("declared", "rle")


def rle_frame(rows: int, columns: int, bits: int = 16) -> bytes:
    """One RLE Lossless frame of zeros: a 64-byte header, one segment per byte of a sample."""
    count = rows * columns
    runs, rest = divmod(count, 128)
    segment = b"\x81\x00" * runs + (bytes([257 - rest, 0]) if rest > 1 else b"\x00\x00" * rest)
    segments = bits // 8
    header = np.zeros(16, "<u4")
    header[0] = segments
    for n in range(segments):
        header[1 + n] = 64 + n * len(segment)
    return header.tobytes() + segment * segments


def rle_bomb(path: Path, size: int) -> None:
    """Rewrite the image at ``path`` as a ``size`` x ``size`` RLE Lossless image of zeros."""
    ds = dcmread(path)
    ds.Rows = ds.Columns = size
    ds.PixelData = encapsulate([rle_frame(size, size, int(ds.BitsAllocated))])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.save_as(path, enforce_file_format=True)


def declared_huge(path: Path) -> None:
    """Make the image at ``path`` declare 65535 x 65535 (its pixel data stays as it was)."""
    ds = dcmread(path)
    ds.Rows = ds.Columns = 65535
    ds.save_as(path, enforce_file_format=True)


_STUDIES: dict[str, Callable[[], list]] = {
    "lung_nodule": lambda: chest_ct(31, shape=(48, 48, 20), n_nodules=0).datasets,
    "brain_lesion": lambda: brain_mr(32, shape=(48, 48, 16)).datasets,
    "mammo_score": lambda: mammography(33, shape=(128, 104)).datasets,
}


def bomb_study(pipeline: str, kind: str, directory: Path) -> list[Path]:
    """A study ``pipeline`` accepts, written to ``directory``, with ``kind`` bombs in it.

    ``declared``: the first image declares 65535 x 65535; ``rle``: every image is an RLE
    bomb of ``PIPELINES[pipeline]`` pixels square.
    """
    files = write_study(_STUDIES[pipeline](), directory)
    if kind == "declared":
        declared_huge(files[0])
    elif kind == "rle":
        for path in files:
            rle_bomb(path, PIPELINES[pipeline])
    else:
        raise ValueError(f"kind must be one of {BOMB_KINDS}, got {kind!r}")
    return files
