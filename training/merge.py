"""`sif merge`: fold a LoRA adapter into its base model so it loads and serves like any model."""

from __future__ import annotations

from pathlib import Path


def merge_adapter(base: str | Path, adapter: str | Path, out: str | Path) -> Path:
    """Load `base`, apply the PEFT adapter in `adapter`, merge it and save model + processor to `out`."""
    from peft import PeftModel
    from transformers import AutoProcessor

    from training.modeling import load_model

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter}: no adapter_config.json (is this a LoRA adapter folder?)")
    model = PeftModel.from_pretrained(load_model(str(base)), str(adapter)).merge_and_unload()
    out = Path(out)
    model.save_pretrained(out)
    # The adapter folder holds the processor the training run used (its image size settings).
    has_processor = (adapter / "processor_config.json").is_file() or (adapter / "preprocessor_config.json").is_file()
    AutoProcessor.from_pretrained(str(adapter if has_processor else base)).save_pretrained(out)
    return out
