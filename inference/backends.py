"""Inference backends behind one interface: `generate(image, depth, question) -> str` and `stream`.

- `hf`: a local Hugging Face model directory or id (optionally with a LoRA adapter);
- `vllm`: vLLM's offline engine (the `vllm` extra, GPU machines);
- `openai`: any OpenAI-compatible server (`vllm serve`, a hosted VLM), images as data URLs.

Every backend sends the SIF-50K prompt: RGB image, then depth image, then
`sif_question(question, suffix)`. The depth image is what SIF-50K models saw, the `spectral_r`
rendering; a depth map in another encoding is re-encoded, and a missing one is estimated
(`depth_model`: a Depth Anything id or path, `tiny`, or `flat` for a constant map).
Sampling keywords are the same everywhere: max_new_tokens, temperature, top_p, do_sample
(temperature 0, the default, means greedy). Importing this module never imports torch.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from common.settings import DEFAULT_DEPTH_MODEL
from sif.depth import DepthMap, decode_image, detect_encoding, encode_spectral_r, spectral_r_image
from sif.errors import ConfigError
from sif.paths import demo_model_dir
from sif.prompts import SIF_SUFFIX, sif_user_message

BACKENDS = ("hf", "vllm", "openai")
FLAT = "flat"
DEMO_MODEL = "demo"  # --model demo: the embedded tiny demo model (`sif train demo-run`)
STOP_WAIT_S = 30.0  # how long a closed stream waits for its generation thread to end


class Backend(Protocol):
    def generate(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> str: ...

    def stream(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> Iterator[str]: ...


# ---------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Sampling:
    """Sampling settings shared by every backend; unknown keywords are a TypeError."""

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    do_sample: bool | None = None  # None: sample when temperature > 0

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ConfigError(f"need temperature ≥ 0 and 0 < top_p ≤ 1, got {self.temperature} and {self.top_p}")

    @property
    def sample(self) -> bool:
        return self.do_sample if self.do_sample is not None else self.temperature > 0

    def hf(self) -> dict:
        if not self.sample:
            return {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": True,
            "temperature": self.temperature or 1.0,
            "top_p": self.top_p,
        }

    def openai(self) -> dict:
        """Chat-completions parameters (`temperature` 0 is the API's greedy)."""
        return {
            "max_tokens": self.max_new_tokens,
            "top_p": self.top_p,
            "temperature": (self.temperature or 1.0) if self.sample else 0.0,
        }


# ---------------------------------------------------------------- images


@dataclass
class SifImages:
    """The two images a SIF model sees, and the depth map in the project's convention."""

    image: Image.Image  # RGB
    depth: Image.Image  # spectral_r rendering, what the model sees
    source: str  # where the depth came from: "given (<encoding>)", "estimated (<model>)", "flat"
    _array: np.ndarray | None = None

    @functools.cached_property
    def depth_map(self) -> DepthMap:
        """Depth (0 = near) at the RGB image's size, for box means and overlays."""
        if self._array is None:
            self._array, _ = decode_image(self.depth, "spectral_r")
        arr = self._array
        if arr.shape != (self.image.height, self.image.width):
            arr = np.asarray(Image.fromarray(arr).resize(self.image.size, Image.NEAREST))
        return DepthMap(arr)


def open_image(image, what: str = "image") -> Image.Image:
    """A PIL image from a PIL image or a path, with a clear error naming `what`."""
    if isinstance(image, Image.Image):
        return image
    path = Path(image)
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} is not a readable image ({exc})") from None
    return img


def prepare_images(image, depth=None, *, depth_model: str = DEFAULT_DEPTH_MODEL) -> SifImages:
    """RGB + spectral_r depth for a model from a PIL image/path and an optional depth image/path."""
    rgb = open_image(image).convert("RGB")
    if depth is not None:
        img = open_image(depth, "depth map")
        encoding = detect_encoding(img)
        exact = None if encoding == "spectral_r" else decode_image(img, encoding)[0]  # kept for measuring
        return SifImages(rgb, spectral_r_image(img, encoding), f"given ({encoding})", exact)
    if depth_model == FLAT:
        arr = np.zeros((rgb.height, rgb.width), dtype=np.float32)
        return SifImages(rgb, Image.fromarray(encode_spectral_r(arr)), FLAT, arr)
    from datagen.depth_model import estimate_depth

    arr = estimate_depth(rgb, depth_model)
    return SifImages(rgb, Image.fromarray(encode_spectral_r(arr)), f"estimated ({depth_model})", arr)


def openai_user_message(images: SifImages, question: str, suffix: str = SIF_SUFFIX) -> dict:
    """The SIF user message with its two image slots filled by data URLs (RGB, then depth)."""
    from common.openai_client import image_data_url

    urls = iter([image_data_url(images.image), image_data_url(images.depth)])
    content = [
        {"type": "image_url", "image_url": {"url": next(urls)}} if part["type"] == "image" else part
        for part in sif_user_message(question, suffix)["content"]
    ]
    return {"role": "user", "content": content}


# ---------------------------------------------------------------- shared plumbing


class _Base:
    """Image preparation and sampling parsing; subclasses implement `_generate` and `_stream`."""

    name = "backend"

    def __init__(self, depth_model: str = DEFAULT_DEPTH_MODEL):
        self.depth_model = depth_model

    def images(self, image, depth) -> SifImages:
        return prepare_images(image, depth, depth_model=self.depth_model)

    def generate(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> str:
        return self._generate(self.images(image, depth), question, suffix, Sampling(**sampling))

    def stream(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> Iterator[str]:
        return self._stream(self.images(image, depth), question, suffix, Sampling(**sampling))


def _drain(produce: Callable[[Callable[[str], None], threading.Event], None]) -> Iterator[str]:
    """Run `produce(emit, stop)` in a thread and yield what it emits; re-raise its error.

    Closing the iterator early sets `stop`, which producers check to end their work, and waits
    a little for them, so that no generation outlives its consumer by more than a step.
    """
    items: queue.Queue = queue.Queue()
    stop = threading.Event()
    done = object()

    def run():
        try:
            produce(items.put, stop)
        except BaseException as exc:  # handed to the consumer
            items.put(_Failure(exc))
        finally:
            items.put(done)

    thread = threading.Thread(target=run, daemon=True, name="sif-generate")
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=STOP_WAIT_S)


@dataclass
class _Failure:
    exc: BaseException


# ---------------------------------------------------------------- Hugging Face


class HFBackend(_Base):
    """A local transformers model (`AutoModelForImageTextToText`), optionally with a PEFT adapter.

    A directory holding only a LoRA adapter (adapter_config.json) loads on its recorded base model.
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        depth_model: str = DEFAULT_DEPTH_MODEL,
    ):
        super().__init__(depth_model)
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model, adapter = _split_adapter(model, adapter)
        self.model_name, self.adapter = model, adapter
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = (
            getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
        )
        try:
            self.processor = AutoProcessor.from_pretrained(model)
            net = AutoModelForImageTextToText.from_pretrained(model, dtype=torch_dtype)
        except OSError as exc:
            raise ConfigError(f"model {model!r} could not be loaded ({exc})") from None
        if adapter:
            from peft import PeftModel

            net = PeftModel.from_pretrained(net, adapter)
        self.model = net.to(self.device).eval()

    def _inputs(self, images: SifImages, question: str, suffix: str):
        prompt = self.processor.apply_chat_template(
            [sif_user_message(question, suffix)], tokenize=False, add_generation_prompt=True
        )
        return self.processor(text=[prompt], images=[images.image, images.depth], return_tensors="pt").to(self.device)

    def _generate(self, images, question, suffix, sampling: Sampling) -> str:
        import torch

        inputs = self._inputs(images, question, suffix)
        with torch.no_grad():
            out = self.model.generate(**inputs, **sampling.hf())
        new = out[0, inputs["input_ids"].shape[1] :]
        return self.processor.tokenizer.decode(new, skip_special_tokens=True)

    def _stream(self, images, question, suffix, sampling: Sampling) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        inputs = self._inputs(images, question, suffix)

        class StopWhenClosed(StoppingCriteria):
            def __init__(self, stop):
                self.stop = stop

            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool, device=input_ids.device)

        def produce(emit, stop):
            streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
            worker_error: list[BaseException] = []

            def work():
                try:
                    with torch.no_grad():
                        self.model.generate(
                            **inputs,
                            **sampling.hf(),
                            streamer=streamer,
                            stopping_criteria=StoppingCriteriaList([StopWhenClosed(stop)]),
                        )
                except BaseException as exc:
                    worker_error.append(exc)
                    streamer.end()

            worker = threading.Thread(target=work, daemon=True, name="sif-hf-generate")
            worker.start()
            for piece in streamer:
                if piece:
                    emit(piece)
            worker.join()
            if worker_error:
                raise worker_error[0]

        return _drain(produce)


def _split_adapter(model: str, adapter: str | None) -> tuple[str, str | None]:
    """(base model, adapter) when `model` is an adapter-only directory; else as given."""
    config = Path(model) / "adapter_config.json"
    if adapter or not config.is_file() or (Path(model) / "config.json").is_file():
        return model, adapter
    import json

    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{config}: adapter has no base_model_name_or_path; pass --model BASE --adapter {model}")
    return base, model


# ---------------------------------------------------------------- vLLM


class VLLMBackend(_Base):
    """vLLM's offline engine; the prompt is the model's own chat template with two images.

    vLLM's offline `LLM` does not stream: `stream` yields the whole completion as one piece.
    """

    name = "vllm"

    def __init__(self, model: str, *, adapter: str | None = None, depth_model: str = DEFAULT_DEPTH_MODEL, **engine):
        super().__init__(depth_model)
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError("the vllm backend needs vLLM: pip install 'sif-workbench[vllm]' (GPU machines)") from None
        from transformers import AutoProcessor

        model, adapter = _split_adapter(model, adapter)
        self.model_name, self.adapter = model, adapter
        self.processor = AutoProcessor.from_pretrained(model)
        engine.setdefault("limit_mm_per_prompt", {"image": 2})
        self.llm = LLM(model=model, enable_lora=bool(adapter), **engine)

    def _generate(self, images, question, suffix, sampling: Sampling) -> str:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        prompt = self.processor.apply_chat_template(
            [sif_user_message(question, suffix)], tokenize=False, add_generation_prompt=True
        )
        params = SamplingParams(
            max_tokens=sampling.max_new_tokens,
            top_p=sampling.top_p,
            temperature=(sampling.temperature or 1.0) if sampling.sample else 0.0,
        )
        lora = LoRARequest("adapter", 1, self.adapter) if self.adapter else None
        outputs = self.llm.generate(
            {"prompt": prompt, "multi_modal_data": {"image": [images.image, images.depth]}},
            params,
            lora_request=lora,
            use_tqdm=False,
        )
        return outputs[0].outputs[0].text

    def _stream(self, images, question, suffix, sampling: Sampling) -> Iterator[str]:
        yield self._generate(images, question, suffix, sampling)


# ---------------------------------------------------------------- OpenAI-compatible


class OpenAIBackend(_Base):
    """Any OpenAI-compatible chat server, through the shared `common.openai_client` client."""

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        depth_model: str = DEFAULT_DEPTH_MODEL,
        timeout_s: float = 300.0,
        max_retries: int = 3,
    ):
        super().__init__(depth_model)
        from common.openai_client import ChatConfig

        self.config = ChatConfig.resolve(base_url, model, timeout_s=timeout_s, max_retries=max_retries, concurrency=1)
        self.model_name = self.config.model

    def _messages(self, images, question, suffix) -> list[dict]:
        return [openai_user_message(images, question, suffix)]

    def _generate(self, images, question, suffix, sampling: Sampling) -> str:
        from common.openai_client import complete_sync

        return complete_sync(self.config, self._messages(images, question, suffix), **sampling.openai()).text

    def _stream(self, images, question, suffix, sampling: Sampling) -> Iterator[str]:
        from common.openai_client import ChatClient

        messages = self._messages(images, question, suffix)

        def produce(emit, stop):
            async def run():
                async with ChatClient(self.config) as client:
                    pieces: AsyncIterator[str] = client.stream(messages, **sampling.openai())
                    async for piece in pieces:
                        if stop.is_set():
                            break
                        emit(piece)

            asyncio.run(run())

        return _drain(produce)


# ---------------------------------------------------------------- factory


def resolve_model(model: str | None, kind: str = "hf") -> str:
    """A model directory or hub id; `demo` names the embedded demo model, which is never built
    here: training is something the user asks for."""
    if not model:
        raise ConfigError(
            f"the {kind} backend needs --model (a model directory or id), or build the embedded tiny "
            "demo model with `sif train demo-run` and pass --model demo"
        )
    if model != DEMO_MODEL:
        return model
    path = demo_model_dir()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"--model demo: the embedded demo model is not built yet ({path}); build it with "
            "`sif train demo-run` (about 20 minutes on 2 CPU cores)"
        )
    return str(path)


def load_backend(
    kind: str = "hf", model: str | None = None, *, adapter: str | None = None, base_url: str | None = None, **opts
) -> Backend:
    """The backend `kind` for `model` (`demo`: the embedded tiny demo model, which sees a flat
    depth map for images without one). `openai` without a model uses the server's default
    ($SIF_OPENAI_MODEL)."""
    if kind in ("hf", "vllm"):
        if model == DEMO_MODEL:
            opts.setdefault("depth_model", FLAT)
        model = resolve_model(model, kind)
        return (HFBackend if kind == "hf" else VLLMBackend)(model, adapter=adapter, **opts)
    if kind == "openai":
        if adapter:
            raise ConfigError("the openai backend serves adapters by name: pass the served name as --model")
        return OpenAIBackend(model, base_url=base_url, **opts)
    raise ConfigError(f"unknown backend {kind!r}; choose from {', '.join(BACKENDS)}")
