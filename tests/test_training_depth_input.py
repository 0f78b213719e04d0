"""Generated → exported → TRL's SFT data path with the tiny model: the depth image the model is
fed, after the processor, is the `spectral_r` rendering of the estimated map (same pixels, same
statistics), never the white picture a 16-bit map becomes once loaded as RGB."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from common.settings import build
from datagen.generation import GenerateConfig, generate
from db.exporters import export_sft
from db.importers import import_file, viscot_converter
from db.store import Store
from training.config import SFTSettings


def _generated_store(tmp_path) -> Store:
    images = tmp_path / "data" / "imgs"
    images.mkdir(parents=True)
    lines = []
    for i in range(3):
        yy, xx = np.mgrid[0:60, 0:80]
        pixels = np.stack([xx * 3, yy * 4, np.full_like(xx, 60 * i)], -1).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"p{i}.png")
        line = {"question": f"Where is thing {i}?", "answer": "left", "image": f"p{i}.png", "width": 80, "height": 60}
        lines.append(line | {"bboxs": [[5, 5, 40, 40]], "dataset": "gqa"})
    (images / "v.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    store = Store.open(tmp_path / "sif.db", data_root=tmp_path / "data")
    assert import_file(store, images / "v.jsonl", viscot_converter(images), progress=False).added == 3
    summary = generate(store, GenerateConfig(teacher="template", depth_model="tiny"), progress=False)
    assert summary.metrics["generated"] == 3
    return store


def _per_image(pixel_values, grid_thw):
    sizes = [int(t * h * w) for t, h, w in grid_thw.tolist()]
    return list(pixel_values.split(sizes))


def test_the_processor_sees_the_spectral_r_rendering_of_the_generated_depth(tiny_model, tmp_path):
    from training.sft import build_sft_trainer

    with _generated_store(tmp_path) as store:
        report = export_sft(store, tmp_path / "sft", fmt="trl")
        assert report.exported == 3
        renderings = {sid: store.model_depth_image(store.get_sample(sid)) for sid in (1, 2, 3)}
        exact = {sid: store.depth_file(store.get_sample(sid)) for sid in (1, 2, 3)}
    assert all(e[1] == "gray16_depth" for e in exact.values())  # the estimated maps are 16-bit
    settings = build(
        SFTSettings,
        dict(
            model=str(tiny_model),
            data=str(tmp_path / "sft"),
            output_dir=str(tmp_path / "out"),
            full_finetune=True,
            image_max_pixels=None,
            eval_ratio=0.0,
            gradient_checkpointing=False,
            trl={"save_strategy": "no", "disable_tqdm": True},
        ),
    )
    trainer, _ = build_sft_trainer(settings)
    processor = trainer.processing_class.image_processor
    for i in range(len(trainer.train_dataset)):
        example = dict(trainer.train_dataset[i])
        batch = trainer.data_collator([example])  # TRL's vision collator: loads and processes the images
        _rgb, depth = _per_image(batch["pixel_values"], batch["image_grid_thw"])
        sid = int(example["sample_id"])
        shown = processor(images=[Image.open(renderings[sid]).convert("RGB")], return_tensors="pt")["pixel_values"]
        np.testing.assert_allclose(depth.numpy(), shown.numpy(), atol=1e-5)
        assert float(depth.std()) > 0.2 and len(np.unique(depth.numpy())) > 50  # colour that varies
        # What the 16-bit map itself would have been, loaded as RGB: white but for a few colours.
        as_rgb = np.asarray(Image.open(exact[sid][0]).convert("RGB")).reshape(-1, 3)
        assert (
            len(np.unique(as_rgb, axis=0))
            <= 6
            < 50
            < len(np.unique(np.asarray(Image.open(renderings[sid])).reshape(-1, 3), axis=0))
        )
