"""The bundle loader: sha256 checks, pretrained override, official model-zoo configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dicomnode.pipeline import RunContext
from dicomnode.pipeline.bundle import BundleError, file_sha256, load_bundle
from pipelines.brain_lesion import BrainLesionPipeline
from pipelines.lung_nodule.model import build_detector, pixdim
from pipelines.mammo_score import MammoScorePipeline
from tests.pipelines.conftest import OFFICIAL

REPO = Path(__file__).resolve().parents[2]
DEMO = ("lung_nodule_ct_detection", "brain_flair_segmentation", "mammo_classification")

needs_official = pytest.mark.usefixtures("official")


@pytest.mark.parametrize("name", DEMO)
def test_demo_bundles_verify_and_say_demo(name: str) -> None:
    bundle = load_bundle(REPO / "models" / name)
    assert bundle.weights_sha256 == file_sha256(REPO / "models" / name / "models" / "model.pt")
    assert "not for clinical use" in bundle.metadata["dicomnode_training"]["note"]
    assert isinstance(bundle.load_network(), torch.nn.Module)


@pytest.fixture
def lung_copy(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(REPO / "models" / "lung_nodule_ct_detection", target)
    return target


def test_sha256_mismatch_is_refused_at_load(lung_copy: Path) -> None:
    weights = lung_copy / "models" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch for models/model.pt"):
        load_bundle(lung_copy)


def test_unlisted_model_file_is_refused(lung_copy: Path) -> None:
    (lung_copy / "models" / "extra.pt").write_bytes(b"not listed")
    with pytest.raises(BundleError, match="models/extra.pt has no sha256"):
        load_bundle(lung_copy)


def test_listed_but_missing_model_file_is_refused(lung_copy: Path) -> None:
    (lung_copy / "models" / "model.pt").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(lung_copy)


@needs_official
def test_official_lung_detector_builds_and_runs() -> None:
    bundle = load_bundle(OFFICIAL / "lung_nodule_ct_detection")
    assert pixdim(bundle) == (0.703125, 0.703125, 1.25)
    detector = build_detector(bundle, "cpu", patch_size=[64, 64, 32])
    with torch.inference_mode():
        out = detector([torch.rand(1, 64, 64, 32)], use_inferer=False)[0]
    assert out["box"].shape[-1] == 6
    assert len(out["label_scores"]) == len(out["box"])


def _finest_features(bundle_path: Path) -> tuple[int, ...]:
    bundle = load_bundle(bundle_path)
    network = bundle.build("network_def")
    build_detector(bundle, "cpu", network=network)
    with torch.inference_mode():
        features = network.feature_extractor(torch.rand(1, 1, 64, 64, 32))
    return tuple(next(iter(features.values())).shape[2:])


@needs_official
def test_backbone_max_pool_follows_the_bundle(lung_copy: Path) -> None:
    # the demo backbone and the official one keep their max-pool (ResNet's default): finest
    # features 4 input voxels apart in-plane
    assert _finest_features(lung_copy) == (16, 16, 16)
    assert _finest_features(OFFICIAL / "lung_nodule_ct_detection") == (16, 16, 16)
    # no_max_pool, which BackboneWithFPN alone would ignore: 2 voxels apart (2.5 mm)
    config = lung_copy / "configs" / "inference.json"
    text = config.read_text()
    stride = '"conv1_t_stride": [2, 2, 1]'
    assert text.count(stride) == 1
    config.write_text(text.replace(stride, stride + ', "no_max_pool": true'))
    assert _finest_features(lung_copy) == (32, 32, 32)


@needs_official
def test_official_breast_density_pretrained_is_overridden(tmp_path: Path) -> None:
    bundle = load_bundle(OFFICIAL / "breast_density_classification")
    assert bundle.get("network_def#pretrained") is False
    network = bundle.load_network()
    with torch.inference_mode():
        out = network(torch.rand(1, 3, 299, 299))
    assert tuple(out.shape) == (1, 4)


@needs_official
def test_official_brats_runs_through_the_brain_pipeline(brats, tmp_path: Path) -> None:
    pipeline = BrainLesionPipeline(
        {"bundle": str(OFFICIAL / "brats_mri_segmentation"), "patch_size": [64, 64, 40]}
    )
    pipeline.check(brats.inputs)
    result = pipeline.run(brats.inputs, RunContext(device="cpu", work_dir=tmp_path))
    assert result.findings.masks[0].array.shape == (40, 64, 64)
    assert result.model_sha256 == ""


@needs_official
def test_official_breast_density_runs_through_the_mammo_pipeline(mg_study, tmp_path) -> None:
    pipeline = MammoScorePipeline({"bundle": str(OFFICIAL / "breast_density_classification")})
    result = pipeline.run(mg_study.inputs, RunContext(device="cpu", work_dir=tmp_path))
    sides = {c.laterality.value for c in result.findings.classifications}
    assert sides == {"L", "R"}
    assert all(c.score is None and c.density is not None for c in result.findings.classifications)


def test_demo_metadata_lists_only_present_files() -> None:
    for name in DEMO:
        meta = json.loads((REPO / "models" / name / "configs" / "metadata.json").read_text())
        assert list(meta["model_files"]) == ["models/model.pt"]


def test_demo_brain_network_scores_a_voxel_by_its_neighbourhood_alone() -> None:
    """A voxel's probability must not depend on what lies far outside its receptive field.

    The demo UNet of bundles up to 0.3.1 instance-normalised its one output channel over the
    whole window: a bright region anywhere in the window, or a larger window, changed every
    voxel's score (lesions of 1.3-1.5x white matter went from 0.6 to 0.0 in a 96^3 window,
    models/FIGURES.md). With batch norm, evaluated on its running statistics, the network is a
    fixed function of each voxel's neighbourhood, whatever window the inferer uses."""
    from pipelines.brain_lesion.model import build_inferer

    bundle = load_bundle(REPO / "models" / "brain_flair_segmentation")
    network = bundle.load_network("cpu")
    generator = torch.Generator().manual_seed(0)
    image = 0.6 + 0.05 * torch.randn((1, 1, 112, 112, 112), generator=generator)
    changed = image.clone()
    changed[..., :16, :16, :16] = 1.5  # a bright block 64+ voxels from the voxels compared
    with torch.no_grad():
        before, after = network(image), network(changed)
    far = (..., slice(80, 96), slice(80, 96), slice(80, 96))
    assert not torch.equal(before[..., :16, :16, :16], after[..., :16, :16, :16])
    torch.testing.assert_close(before[far], after[far], rtol=0, atol=1e-5)
    assert list(build_inferer(bundle).roi_size) == list(bundle.get("train_patch_size"))


def test_mirrored_probability_is_the_same_from_either_side() -> None:
    """Test-time mirroring averages the demo network over the 8 mirror images: the result for a
    mirrored brain is the mirrored result, although the network alone is not symmetric; one
    pass (``mirror`` false) is the network's own sigmoid."""
    from pipelines.brain_lesion.model import build_inferer, mirrored_probability

    bundle = load_bundle(REPO / "models" / "brain_flair_segmentation")
    network = bundle.load_network("cpu")
    inferer = build_inferer(bundle)
    generator = torch.Generator().manual_seed(1)
    image = 0.6 + 0.05 * torch.randn((1, 40, 36, 32), generator=generator)
    image[:, 8:14, 10:15, 12:16] = 1.1  # an off-centre bright lesion
    flipped = torch.flip(image, (1, 3))
    with torch.no_grad():
        once = mirrored_probability(inferer, image, network, 0, mirror=False)
        once_flipped = mirrored_probability(inferer, flipped, network, 0, mirror=False)
        both = mirrored_probability(inferer, image, network, 0)
        both_flipped = mirrored_probability(inferer, flipped, network, 0)
        torch.testing.assert_close(once, torch.sigmoid(inferer(image[None], network))[0, 0])
    assert (torch.flip(once_flipped, (0, 2)) - once).abs().max() > 1e-3
    torch.testing.assert_close(torch.flip(both_flipped, (0, 2)), both, rtol=0, atol=1e-5)
