"""Estimated depth maps are keyed by the image's bytes and the model, never by a sample id: two
stores over one data root, their samples in another order, each get every image's own map (and
the second store pays for no estimate); a cached map of another size than its image is refused."""

from __future__ import annotations

import numpy as np
from PIL import Image

from datagen.depth_source import DepthEstimator, estimated_depth_path
from datagen.generation import GenerateConfig, generate
from db.store import Store
from sif.depth import DepthMap, rendering_path

SIZES = {"wide.png": (64, 48), "tall.png": (32, 40)}


def _by_content(image: Image.Image) -> np.ndarray:
    """A map that depends on the picture: its gray levels, as depth."""
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _add(store, names):
    for name in names:
        w, h = SIZES[name]
        store.add_sample(
            dataset="viscot",
            source_id=name,
            image=f"pics/{name}",
            question=f"Where is it in {name}?",
            answer="here",
            gt_boxes=[[0.1, 0.1, 0.6, 0.7]],
            width=w,
            height=h,
        )


def _pictures(root):
    (root / "pics").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (w, h) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "pics" / name)


def test_two_stores_over_one_root_get_each_images_own_map(tmp_path):
    root = tmp_path / "data"
    _pictures(root)
    calls = []

    def estimate(image):
        calls.append(image.size)
        return _by_content(image)

    orders = {"one.db": ["wide.png", "tall.png"], "two.db": ["tall.png", "wide.png"]}
    for db, names in orders.items():
        with Store.open(tmp_path / db, data_root=root) as store:
            _add(store, names)
            summary = generate(
                store,
                GenerateConfig(teacher="template"),
                estimator=DepthEstimator("fake/model", estimate=estimate),
                progress=False,
            )
            assert summary.metrics["generated"] == 2 and summary.errors == []
            for sid, name in enumerate(names, start=1):
                sample = store.get_sample(sid)
                with Image.open(root / "pics" / name) as img:
                    own = _by_content(img)
                depth = DepthMap.load(store.resolve(sample.depth), sample.depth_encoding).array
                assert depth.shape == own.shape and np.abs(depth - own).max() < 1e-4, (db, name)
                assert rendering_path(store.resolve(sample.depth)).is_file()
    assert sorted(calls) == sorted(SIZES.values())  # the second store reused both maps


def test_a_cached_map_of_another_size_is_refused(tmp_path):
    root = tmp_path / "data"
    _pictures(root)
    estimator = DepthEstimator("fake/model", estimate=_by_content)
    wrong = estimated_depth_path(root, estimator, (root / "pics" / "wide.png").read_bytes())
    wrong.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((40, 32), np.uint16)).save(wrong)  # tall.png's size, at wide.png's key
    with Store.open(tmp_path / "sif.db", data_root=root) as store:
        _add(store, ["wide.png", "tall.png"])
        summary = generate(store, GenerateConfig(teacher="template"), estimator=estimator, progress=False)
        assert summary.metrics["generated"] == 1 and summary.metrics["skipped"] == 1
        assert "is 32×40, its image" in summary.errors[0] and "64×48: refused" in summary.errors[0]
        assert store.get_sample(1).depth is None and store.current_chain(1) is None
