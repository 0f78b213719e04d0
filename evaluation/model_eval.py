"""Generate SIF chains with a local HF model, keep them in the store, and score them from there.

`generate_chains` is the plain `model.generate` path (batched, left-padded, greedy by default)
other parts reuse. `predict_to_store` writes each chain as a `prediction` revision of an
evaluation run; `score_stored` reads the run's predictions back and scores them with
`evaluation.metrics` (the scoring `sif eval synth` uses), so every figure describes what the
store holds and a curator can open each prediction in the workbench.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from evaluation.metrics import aggregate, score_record
from evaluation.records import EvalRecord
from sif.prompts import SIF_SUFFIX, sif_user_message
from sif.rewards import rule_based_score


def generate_chains(
    model,
    processor,
    items: list[tuple[str, str, str]],
    *,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    suffix: str = SIF_SUFFIX,
    progress=None,
    **sampling,
) -> list[str]:
    """The completion text for each (image path, depth image path, question)."""
    import torch

    tok = processor.tokenizer
    sampling.setdefault("do_sample", False)
    out = []
    model.eval()
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        texts = [
            processor.apply_chat_template([sif_user_message(q, suffix)], tokenize=False, add_generation_prompt=True)
            for _, _, q in batch
        ]
        images = [[Image.open(i).convert("RGB"), Image.open(d).convert("RGB")] for i, d, _ in batch]
        enc = processor(text=texts, images=images, return_tensors="pt", padding=True, padding_side="left")
        enc = enc.to(model.device)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **sampling)
        out += tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        if progress is not None:
            progress(len(out), len(items))
    return out


def synth_records(store, *, split: str = "test", limit: int | None = None) -> list[tuple[int, EvalRecord]]:
    """(sample id, synth eval record) for the store's samples of `split`: the model is shown the
    `spectral_r` depth picture (`depth_image`), the depth check reads the exact map (`depth`)."""
    out = []
    for row in store.query(split=split, limit=limit or 1_000_000):
        s = store.get_sample(row.id)
        depth = store.depth_file(s)
        record = EvalRecord(
            id=str(s.id),
            kind="synth",
            dataset=s.dataset,
            category=str(s.meta.get("question_kind", s.dataset)),
            question=s.question,
            answer=s.answer,
            image=str(store.resolve(s.image)),
            width=s.width,
            height=s.height,
            gt_boxes=s.gt_boxes,
            depth_image=str(store.model_depth_image(s)) if depth else None,
            depth=depth[0] if depth else None,
            depth_encoding=depth[1] if depth else None,
        )
        out.append((s.id, record))
    return out


def store_predictions(
    store,
    records: list[tuple[int, EvalRecord]],
    texts: list[str],
    *,
    name: str,
    author: str,
    config: dict | None = None,
) -> str:
    """Each text as a `prediction` revision of its record's sample under a new evaluation run; the run id."""
    run_id = store.create_run("evaluation", {"benchmark": "synth", **(config or {})}, name=name)
    with store.transaction():
        for (sid, _), text in zip(records, texts):
            store.add_revision(sid, text, origin="prediction", author=author, run_id=run_id)
    store.update_run(run_id, status="running")  # done once scored (`score_stored`)
    return run_id


def predict_to_store(
    store,
    model_dir: str | Path,
    records: list[tuple[int, EvalRecord]],
    *,
    name: str,
    config: dict | None = None,
    max_new_tokens: int = 512,
    batch_size: int = 16,
    depth_images: list[str] | None = None,
    progress=None,
) -> str:
    """Generate a chain for each record and store it (`store_predictions`); returns the run id.
    `depth_images` replaces the depth picture the model is shown (the no-depth ablation)."""
    from transformers import AutoProcessor

    from training.modeling import load_model

    items = []
    for k, (_, r) in enumerate(records):
        depth = depth_images[k] if depth_images is not None else r.depth_image
        if not r.image or not depth:
            raise ValueError(f"record {r.id}: needs an image and a depth image, has {r.image!r} and {depth!r}")
        items.append((r.image, depth, r.question))
    processor = AutoProcessor.from_pretrained(str(model_dir))
    model = load_model(str(model_dir))
    texts = generate_chains(
        model, processor, items, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress
    )
    config = {"model": str(model_dir), "max_new_tokens": max_new_tokens, **(config or {})}
    return store_predictions(store, records, texts, name=name, author=Path(model_dir).name, config=config)


def score_stored(store, run_id: str, records: list[tuple[int, EvalRecord]], scorer=rule_based_score) -> dict:
    """The run's metrics over `records`, from the predictions the store holds (a record without
    one scores as an empty answer); stored in the run and returned with the per-record scores."""
    texts = store.run_predictions(run_id)
    scores = [score_record(r, texts.get(sid, ""), scorer) for sid, r in records]
    metrics = aggregate("synth", [r for _, r in records], scores)
    per_record = [{"sample_id": sid, "category": r.category, **s} for (sid, r), s in zip(records, scores)]
    store.update_run(run_id, status="done", metrics=metrics)
    return {"metrics": metrics, "records": per_record}
