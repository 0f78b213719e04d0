"""Generate SIF chains with a local HF model and score them on held-out samples.

`generate_chains` is the plain `model.generate` path (batched, left-padded, greedy by default)
other parts reuse; `evaluate_model` reports format-valid rate, answer accuracy, mean final-step
HIoU, depth-consistency rate and the mean total reward (format + answer + bbox + depth, the
answer term as on a sample's first visit, i.e. the judge score).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from sif.chain import parse_chain
from sif.geometry import hiou
from sif.prompts import SIF_SUFFIX, sif_user_message
from sif.rewards import bbox_reward, depth_reward, format_reward, rule_based_score


@dataclass
class EvalMetrics:
    n: int
    format_valid: float
    accuracy: float  # exact answers (rule-based score of 1), as `sif eval synth` counts them
    final_hiou: float
    depth_consistent: float
    total_reward: float

    def to_json(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


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


def read_eval_rows(path: str | Path, limit: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def score_chains(rows: list[dict], texts: list[str]) -> tuple[EvalMetrics, list[dict]]:
    """Metrics over `rows` (RL-export records) and their generated `texts`, plus per-sample details."""
    fmt = format_reward(texts)
    bbox = bbox_reward(texts, gt_boxes=[r["gt_boxes"] for r in rows])
    exact = [  # the exact map when the export carries one (`depth_map`), else the picture the model saw
        (r["depth_map"], r.get("depth_map_encoding"))
        if r.get("depth_map")
        else (r["depth_image"], r.get("depth_encoding"))
        for r in rows
    ]
    depth = depth_reward(texts, depth_path=[p for p, _ in exact], depth_encoding=[e for _, e in exact])
    details = []
    for row, text, f, b, d in zip(rows, texts, fmt, bbox, depth):
        chain = parse_chain(text).chain
        answer = rule_based_score(row["question"], str(row["answer"]), chain.answer) if chain.answer else 0.0
        final = hiou(chain.final_boxes, row["gt_boxes"]) if chain.steps else 0.0
        details.append(
            {
                "sample_id": row.get("sample_id"),
                "question": row["question"],
                "answer": row["answer"],
                "prediction": chain.answer,
                "format": f,
                "answer_score": answer,
                "correct": float(answer == 1.0),
                "final_hiou": final,
                "depth": d,
                "bbox_reward": b,
                "total": f + answer + b + d,
                "text": text,
            }
        )
    n = max(len(details), 1)
    mean = lambda key: sum(x[key] for x in details) / n
    metrics = EvalMetrics(
        len(details), mean("format"), mean("correct"), mean("final_hiou"), mean("depth"), mean("total")
    )
    return metrics, details


def evaluate_model(
    model_dir: str | Path, rows: list[dict], *, max_new_tokens: int = 512, batch_size: int = 8, progress=None
) -> tuple[EvalMetrics, list[dict]]:
    from transformers import AutoProcessor

    from training.modeling import load_model

    processor = AutoProcessor.from_pretrained(str(model_dir))
    model = load_model(str(model_dir))
    items = [(r["image"], r["depth_image"], r["question"]) for r in rows]
    texts = generate_chains(
        model, processor, items, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress
    )
    return score_chains(rows, texts)
