"""What the three shipped pipelines share: options, the bundle, the model cache, autocast.

No torch at import time: a pipeline's ``check`` runs in a light process (the node's checker);
torch and MONAI are imported by ``run`` (through the pipelines' ``model`` modules).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dicomnode.pipeline import Pipeline, PipelineResult
from dicomnode.pipeline.bundle import Bundle, BundleError, load_bundle
from dicomnode.results import Findings
from pipelines.common.calibration import Calibration
from pipelines.common.dicomio import DEFAULT_DECODE_BUDGET, DEFAULT_MAX_COMPRESSION_RATIO

__all__ = ["MODELS_DIR", "BundlePipeline", "inference_mode"]


def _models_dir() -> Path:
    """The demo bundles: shipped in the wheel as ``pipelines/models/``, else ``models/`` of the
    source tree (a checkout or an editable install; see setup.py)."""
    installed = Path(__file__).resolve().parents[1] / "models"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[2] / "models"


MODELS_DIR = _models_dir()
"""The folder of the demo bundles (``<bundle_name>/`` each)."""


@contextlib.contextmanager
def inference_mode(device: str, amp: bool) -> Iterator[None]:
    """``torch.inference_mode`` plus float16 autocast on CUDA when ``amp`` is set."""
    import torch

    with torch.inference_mode():
        if amp and device.startswith("cuda"):
            with torch.autocast("cuda", dtype=torch.float16):
                yield
        else:
            yield


class BundlePipeline(Pipeline):
    """A pipeline backed by one MONAI bundle, loaded once per instance and device.

    Options read (``pipelines.<name>`` in the config)
    -------------------------------------------------
    bundle : str
        Bundle directory; relative paths are tried against the working directory, then the
        folder above :data:`MODELS_DIR` (so ``models/<bundle_name>`` names a shipped bundle
        in a checkout and in an installed wheel alike). Default ``models/<bundle_name>``.
    decode_budget_bytes : int
        Largest decoded pixel data of one job (default 2 GiB).
    max_compression_ratio : float
        Largest declared-decoded / stored size of one image (default 32); above it an image
        is refused as a decompression bomb.
    amp : bool
        Mixed precision on CUDA (default true).
    """

    bundle_name: ClassVar[str]

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self._bundle: Bundle | None = None
        self._model: Any = None
        self._model_device: str | None = None

    def option(self, key: str, default: Any, ctx_options: Mapping[str, Any] | None = None) -> Any:
        """``key`` from the run's options, else the instance's, else ``default``."""
        if ctx_options and key in ctx_options:
            return ctx_options[key]
        return self.options.get(key, default)

    @property
    def bundle_path(self) -> Path:
        """Where the bundle lives (see the ``bundle`` option)."""
        raw = self.options.get("bundle")
        if raw is None:
            return MODELS_DIR / self.bundle_name
        path = Path(str(raw)).expanduser()
        if path.is_absolute() or path.exists():
            return path
        return MODELS_DIR.parent / path

    @property
    def decode_budget(self) -> int:
        """Decoded-size budget in bytes."""
        value = int(self.options.get("decode_budget_bytes", DEFAULT_DECODE_BUDGET))
        if value < 1:
            raise ValueError(f"decode_budget_bytes must be >= 1, got {value}")
        return value

    @property
    def max_compression_ratio(self) -> float:
        """Largest declared-decoded / stored size of one image."""
        value = float(self.options.get("max_compression_ratio", DEFAULT_MAX_COMPRESSION_RATIO))
        if not value >= 1:
            raise ValueError(f"max_compression_ratio must be >= 1, got {value}")
        return value

    @property
    def amp(self) -> bool:
        """Whether to use mixed precision on CUDA."""
        return bool(self.options.get("amp", True))

    def metadata(self) -> dict[str, Any]:
        """The bundle's ``configs/metadata.json`` (read without loading the bundle)."""
        if self._bundle is not None:
            return self._bundle.metadata
        path = self.bundle_path / "configs" / "metadata.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BundleError(f"cannot read {path}: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def bundle(self, device: str = "cpu") -> Bundle:
        """The parsed bundle (verified once)."""
        if self._bundle is None:
            self._bundle = load_bundle(self.bundle_path, device=device)
        return self._bundle

    def model(self, device: str) -> Any:
        """The model for ``device``, built on first use and kept for later runs."""
        if self._model is None or self._model_device != device:
            self._model = self.build_model(self.bundle(device), device)
            self._model_device = device
        return self._model

    def prepare(self, device: str) -> None:
        """Build the model for ``device`` now (:meth:`model`), before the run uses it."""
        self.model(device)

    def build_model(self, bundle: Bundle, device: str) -> Any:
        """Build the model from ``bundle`` (default: its ``network_def`` with weights)."""
        return bundle.load_network(device)

    @property
    def demo_weights(self) -> bool:
        """Whether the loaded weights are demo weights (False before loading)."""
        return self._bundle.demo_weights if self._bundle is not None else False

    def calibration(self) -> Calibration | None:
        """The bundle's score calibration (``dicomnode_calibration`` in its metadata), or
        None: raw scores are then reported unchanged."""
        return Calibration.from_metadata(self.metadata())

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` mapped to calibrated probabilities (unchanged without a calibration)."""
        calibration = self.calibration()
        raw = np.asarray(scores, dtype=np.float64)
        return calibration.apply(raw) if calibration is not None else raw

    def operating_point(self, ctx_options: Mapping[str, Any] | None, default: float) -> float:
        """The score threshold: the ``threshold`` option, else the calibration's operating
        point, else ``default``."""
        calibration = self.calibration()
        fallback = calibration.operating_point if calibration is not None else default
        value = float(self.option("threshold", fallback, ctx_options))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {value}")
        return value

    def result(self, findings: Findings) -> PipelineResult:
        """``findings`` with what made them: the loaded weights' sha256, name and version."""
        bundle = self._bundle
        return PipelineResult(
            findings=findings,
            model_sha256=self.model_sha256,
            demo_weights=self.demo_weights,
            model_name=bundle.name if bundle is not None else "",
            model_version=bundle.version if bundle is not None else "",
        )

    @property
    def model_sha256(self) -> str:
        """sha256 of the loaded weights ("" before loading or without weights)."""
        return self._bundle.weights_sha256 if self._bundle is not None else ""
