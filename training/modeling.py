"""Loading a VLM and its processor for training, the LoRA setup, and the run record in the store."""

from __future__ import annotations

from training.config import LoraSettings

# Linear layers of the language model (Qwen2/2.5-VL, LLaVA-style and most HF VLM layouts).
LANGUAGE_LINEAR = r".*(language_model|text_model).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# PEFT matches a string target as a regex over the whole module name.
NAMED_TARGETS = {"all-linear": LANGUAGE_LINEAR, "all-linear+lm_head": f"({LANGUAGE_LINEAR}|(.*\\.)?lm_head)"}
VISION_PREFIXES = ("visual", "vision_tower", "vision_model")


def load_processor(model_path: str, image_max_pixels: int | None):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_path)
    if image_max_pixels is not None:
        ip = processor.image_processor
        ip.size = {**dict(ip.size), "longest_edge": int(image_max_pixels)}
        ip.size["shortest_edge"] = min(ip.size.get("shortest_edge", 0), int(image_max_pixels))
    return processor


def torch_dtype(bf16: bool | None):
    import torch

    if bf16 is None:
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16 else torch.float32


def load_model(model_path: str, bf16: bool | None = None):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch_dtype(bf16))


def vision_parameters(model):
    for name, param in model.named_parameters():
        if any(part in VISION_PREFIXES for part in name.split(".")):
            yield name, param


def freeze_vision_tower(model) -> int:
    """Stop gradients into the vision encoder (and its merger); returns how many tensors were frozen."""
    frozen = 0
    for _, param in vision_parameters(model):
        param.requires_grad_(False)
        frozen += 1
    return frozen


def lora_config(settings: LoraSettings, task_type: str = "CAUSAL_LM"):
    """LoRA on a named target (`NAMED_TARGETS`, see `LoraSettings`), or on the modules given.
    The vision tower is trained (or frozen) as a whole, never adapted."""
    from peft import LoraConfig

    if settings.full_finetune:
        return None
    target = settings.lora_target_modules
    target = NAMED_TARGETS.get(target, target) if isinstance(target, str) else target
    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=target,
        task_type=task_type,
    )


class RunRecord:
    """The run's row in the store (when a DB is configured): created, updated, finished."""

    def __init__(self, db: str | None, kind_name: str, config: dict, name: str | None):
        self.store = self.run_id = None
        if db:
            from db.store import Store

            self.store = Store.open(db)
            self.run_id = self.store.create_run("training", {"stage": kind_name, **config}, name=name)
            self.store.update_run(self.run_id, status="running")

    def update(self, **metrics) -> None:
        if self.store is not None:
            self.store.update_run(self.run_id, metrics=metrics)

    def finish(self, status: str, **metrics) -> None:
        if self.store is not None:
            self.store.update_run(self.run_id, status=status, metrics=metrics)
            self.store.close()
