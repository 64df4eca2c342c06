"""Load MONAI bundles (``configs/metadata.json``, ``configs/inference.json``, ``models/``).

The one loader of the node: our own demo bundles and official model-zoo bundles dropped into
``models/<bundle>/`` go through it. It

- parses ``configs/inference.json`` with :class:`monai.bundle.ConfigParser`,
- overrides every ``pretrained`` / ``pretrained_backbone`` flag to false (an official config
  would otherwise download ImageNet weights at build time) and ``device`` to the requested one,
- checks the sha256 of every file under ``models/`` against ``metadata.json``'s
  ``model_files`` table before torch reads a byte of it, and refuses unlisted or mismatching
  files.

Imports torch and MONAI: only workers (and pipelines) import this module.

Metadata layout for the checksums (paths relative to the bundle root)::

    "model_files": {"models/model.pt": {"sha256": "<64 hex digits>", "bytes": 123}}
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomnode.errors import DicomNodeError

__all__ = [
    "MODEL_SUFFIXES",
    "Bundle",
    "BundleError",
    "file_sha256",
    "load_bundle",
    "verify_model_files",
]

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".onnx", ".ckpt", ".safetensors")
"""Files under ``models/`` that count as model files and must carry a sha256."""

_PRETRAINED_KEYS = ("pretrained", "pretrained_backbone")


class BundleError(DicomNodeError):
    """A bundle cannot be loaded; the message names the bundle, the file or key, and why.

    Parameters
    ----------
    message : str
        What is wrong.
    bundle : Path, optional
        Root of the bundle.
    """

    def __init__(self, message: str, *, bundle: Path | None = None):
        self.bundle = bundle
        super().__init__(f"bundle {bundle}: {message}" if bundle else message)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Lowercase hex sha256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _model_files(root: Path) -> list[Path]:
    models = root / "models"
    if not models.is_dir():
        return []
    return sorted(p for p in models.rglob("*") if p.is_file() and p.suffix in MODEL_SUFFIXES)


def _listed_sha256(entry: object) -> str | None:
    if isinstance(entry, str):
        return entry.lower()
    if isinstance(entry, Mapping) and isinstance(entry.get("sha256"), str):
        return str(entry["sha256"]).lower()
    return None


def verify_model_files(root: Path, metadata: Mapping[str, Any]) -> dict[str, str]:
    """Check every model file under ``root/models`` against ``metadata["model_files"]``.

    Returns
    -------
    dict of str to str
        sha256 by path relative to ``root``, of every model file present.

    Raises
    ------
    BundleError
        A model file is not listed, has no sha256, or its sha256 differs; or a listed file is
        missing.
    """
    listed = metadata.get("model_files", {})
    if not isinstance(listed, Mapping):
        raise BundleError("metadata.json model_files must be an object", bundle=root)
    present = {p.relative_to(root).as_posix(): p for p in _model_files(root)}
    checked: dict[str, str] = {}
    for rel, path in present.items():
        expected = _listed_sha256(listed.get(rel))
        if expected is None:
            raise BundleError(
                f"model file {rel} has no sha256 in configs/metadata.json model_files; "
                "add it (sha256sum) or remove the file",
                bundle=root,
            )
        actual = file_sha256(path)
        if actual != expected:
            raise BundleError(
                f"sha256 mismatch for {rel}: metadata says {expected}, file has {actual}; "
                "the file is corrupt or was replaced",
                bundle=root,
            )
        checked[rel] = actual
    missing = sorted(set(listed) - set(present))
    if missing:
        raise BundleError(f"model files listed in metadata are missing: {missing}", bundle=root)
    return checked


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def disable_pretrained(config: dict[str, Any]) -> list[str]:
    """Set every ``pretrained``/``pretrained_backbone`` key in ``config`` to False, in place.

    Returns the ``_target_`` (or "?") of each component changed, for the log.
    """
    changed = []
    for node in _walk(config):
        for key in _PRETRAINED_KEYS:
            if key in node and node[key] is not False:
                node[key] = False
                changed.append(str(node.get("_target_", "?")))
    return changed


def _read_json(path: Path, root: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path.relative_to(root)} is missing", bundle=root) from None
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"{path.relative_to(root)} is not valid JSON: {exc}", bundle=root
        ) from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path.relative_to(root)} must hold a JSON object", bundle=root)
    return data


@dataclass
class Bundle:
    """A parsed bundle.

    Attributes
    ----------
    root : Path
        Bundle directory.
    metadata : dict
        ``configs/metadata.json``.
    config : dict
        ``configs/inference.json`` after the overrides (raw, not instantiated).
    parser : monai.bundle.ConfigParser
        Parser over ``config``; ``parser.get_parsed_content(key)`` builds a component.
    model_sha256 : dict of str to str
        sha256 of each model file, by path relative to ``root`` (verified at load).
    """

    root: Path
    metadata: dict[str, Any]
    config: dict[str, Any]
    parser: Any
    model_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The bundle's ``name`` from metadata, else its directory name."""
        return str(self.metadata.get("name") or self.root.name)

    @property
    def version(self) -> str:
        """The bundle's ``version`` from metadata ("0" when absent)."""
        return str(self.metadata.get("version", "0"))

    @property
    def weights_path(self) -> Path | None:
        """``models/model.pt`` when present."""
        path = self.root / "models" / "model.pt"
        return path if path.is_file() else None

    @property
    def demo_weights(self) -> bool:
        """Whether the weights are dicomnode's demo weights (trained by ``models/train.py`` on
        synthetic phantoms, which records itself as ``dicomnode_training`` in the metadata)."""
        return "dicomnode_training" in self.metadata

    @property
    def weights_sha256(self) -> str:
        """sha256 of ``models/model.pt``, or "" when the bundle ships no weights."""
        return self.model_sha256.get("models/model.pt", "")

    def get(self, key: str, default: Any = None) -> Any:
        """A raw (not instantiated, not evaluated) config value, ``#``-separated key path."""
        node: Any = self.config
        for part in key.split("#"):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        return copy.deepcopy(node)

    def has(self, key: str) -> bool:
        """Whether the config holds ``key``."""
        return self.get(key, _MISSING) is not _MISSING

    def build(self, key: str) -> Any:
        """Instantiate/evaluate the config item ``key`` (e.g. ``"network_def"``).

        Raises
        ------
        BundleError
            When the item is missing or cannot be built (the message keeps MONAI's reason).
        """
        if not self.has(key):
            raise BundleError(f"configs/inference.json has no item {key!r}", bundle=self.root)
        try:
            return self.parser.get_parsed_content(key, instantiate=True)
        except (ImportError, ModuleNotFoundError) as exc:
            raise BundleError(f"cannot build {key!r}: {exc}", bundle=self.root) from exc
        except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BundleError(f"cannot build {key!r}: {exc}", bundle=self.root) from exc

    def transform_args(
        self, target: str, key: str = "preprocessing", *, include_disabled: bool = False
    ) -> dict[str, Any] | None:
        """Arguments of the first transform named ``target`` in ``key``'s Compose list.

        Used to preprocess DICOM volumes "as the bundle says" without the bundle's file
        loaders, e.g. ``transform_args("Spacingd")["pixdim"]``. Disabled transforms
        (``_disabled_`` true) are skipped unless ``include_disabled``; ``@``-references and
        ``$``-expressions over plain values are evaluated.
        """
        for item in self.get(f"{key}#transforms", []) or []:
            if not isinstance(item, dict):
                continue
            name = str(item.get("_target_", "")).rsplit(".", 1)[-1]
            if name != target:
                continue
            disabled = self._value(item.get("_disabled_", False))
            if disabled is True and not include_disabled:
                continue
            return {k: self._value(v) for k, v in item.items() if not k.startswith("_")}
        return None

    def _value(self, value: Any) -> Any:
        """Resolve ``@ref`` and ``$expression`` values of plain (non-component) config items."""
        if not (isinstance(value, str) and value[:1] in ("@", "$")):
            return value
        try:
            self.parser[_EVAL_SLOT] = value
            return self.parser.get_parsed_content(_EVAL_SLOT, lazy=False, instantiate=False)
        except (KeyError, ValueError, NameError, SyntaxError, TypeError) as exc:
            raise BundleError(f"cannot evaluate {value!r}: {exc}", bundle=self.root) from exc

    def load_network(self, device: str = "cpu", key: str = "network_def") -> Any:
        """Build ``key`` (a torch module), load ``models/model.pt`` when present, eval mode.

        Parameters
        ----------
        device : str
            Torch device to move the network to.
        key : str
            Config item holding the network definition.

        Raises
        ------
        BundleError
            The network cannot be built or the weights do not fit it.
        """
        import torch

        network = self.build(key)
        if not isinstance(network, torch.nn.Module):
            raise BundleError(f"{key!r} is not a torch module", bundle=self.root)
        path = self.weights_path
        if path is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("model"), dict):
                state = state["model"]
            try:
                network.load_state_dict(state)
            except RuntimeError as exc:
                raise BundleError(
                    f"models/model.pt does not fit {key!r}: {str(exc).splitlines()[0]}",
                    bundle=self.root,
                ) from exc
        return network.to(device).eval()


_MISSING = object()
_EVAL_SLOT = "__dicomnode_eval__"


def load_bundle(
    path: str | Path,
    *,
    device: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
    config_name: str = "inference.json",
) -> Bundle:
    """Read, verify and parse the bundle at ``path`` (nothing is instantiated yet).

    Parameters
    ----------
    path : str or Path
        Bundle root holding ``configs/metadata.json`` and ``configs/<config_name>``.
    device : str
        Torch device put in the config's ``device`` item (``"cpu"``, ``"cuda"``...).
    overrides : mapping, optional
        ``#``-separated key paths and values set after loading (e.g.
        ``{"network_def#init_filters": 8}``).
    config_name : str
        Which config of ``configs/`` to parse.

    Raises
    ------
    BundleError
        Missing/invalid files, model files whose sha256 does not match the metadata.
    """
    from monai.bundle import ConfigParser

    root = Path(path).resolve()
    if not root.is_dir():
        raise BundleError("is not a directory", bundle=root)
    metadata = _read_json(root / "configs" / "metadata.json", root)
    config = _read_json(root / "configs" / config_name, root)
    sha = verify_model_files(root, metadata)
    changed = disable_pretrained(config)
    if changed:
        log.info("bundle %s: pretrained set to false in %s", root.name, ", ".join(changed))
    config["bundle_root"] = str(root)
    config["device"] = f"$torch.device({device!r})"
    parser = ConfigParser(config)
    for key, value in (overrides or {}).items():
        parser[key] = value
    resolved = parser.get()
    return Bundle(root=root, metadata=metadata, config=resolved, parser=parser, model_sha256=sha)
