"""Inference backends behind one interface: `generate(image, depth, question) -> str` and `stream`.

- `hf`: a local Hugging Face model directory or id (optionally with a LoRA adapter);
- `vllm`: vLLM's offline engine (the `vllm` extra, GPU machines);
- `openai`: any OpenAI-compatible server (`vllm serve`, a hosted VLM), images as data URLs.

Every backend sends the SIF-50K prompt: RGB image, then depth image, then
`sif_question(question, suffix)`. The depth image is what SIF-50K models saw, the `spectral_r`
rendering; a depth map in another encoding is re-encoded, and a missing one is estimated
(`depth_model`: a Depth Anything id or path, `tiny`, or `flat` for a constant map).
Sampling keywords are the same everywhere: max_new_tokens, temperature, top_p, do_sample
(temperature 0, the default, means greedy). Images above `max_pixels` (default 589,824, the
reference's inference setting) are scaled down to it. `generate_many` answers many requests at
once, yielding each answer as it is ready: `hf` in left-padded batches, `vllm` in chunks handed
to one `LLM.generate` call, `openai` with requests in flight concurrently. Importing this module
never imports torch.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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
# The reference's inference: `max_tokens=2048` (SIFThinker scripts/infer.py) and LLaMA-Factory's
# default `image_max_pixels` of 768 × 768 behind its API server.
DEFAULT_MAX_NEW_TOKENS = 2048
DEFAULT_MAX_PIXELS = 589_824
DEFAULT_BATCH_SIZE = {"hf": 8, "vllm": 256}  # records per model call
DEFAULT_CONCURRENCY = 16  # openai: requests in flight


@dataclass(frozen=True)
class GenerateRequest:
    """One question for `generate_many`; `key` comes back with its answer."""

    key: Any
    image: Any  # PIL image or path
    depth: Any  # PIL image, path, or None (estimated)
    question: str
    suffix: str = SIF_SUFFIX


# (request key, the answer, or the error that request met)
Answer = tuple[Any, "str | Exception"]


class Backend(Protocol):
    def generate(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> str: ...

    def stream(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> Iterator[str]: ...

    def generate_many(self, requests: Iterable[GenerateRequest], **sampling) -> Iterator[Answer]: ...


# ---------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Sampling:
    """Sampling settings shared by every backend; unknown keywords are a TypeError."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
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
            arr = np.asarray(Image.fromarray(arr).resize(self.image.size, Image.Resampling.NEAREST))
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


def fit_pixels(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """`image` scaled down (aspect kept) so that it has at most `max_pixels` pixels."""
    w, h = image.size
    if not max_pixels or w * h <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (w * h))
    return image.resize((max(1, math.floor(w * scale)), max(1, math.floor(h * scale))), Image.Resampling.BICUBIC)


def openai_user_message(
    images: SifImages, question: str, suffix: str = SIF_SUFFIX, max_pixels: int | None = None
) -> dict:
    """The SIF user message with its two image slots filled by data URLs (RGB, then depth)."""
    from common.openai_client import image_data_url

    urls = [image_data_url(fit_pixels(images.image, max_pixels)), image_data_url(fit_pixels(images.depth, max_pixels))]
    return user_message_with_urls(urls, question, suffix)


def user_message_with_urls(urls: list[str], question: str, suffix: str = SIF_SUFFIX) -> dict:
    """The SIF user message with its image slots filled by `urls` (RGB, then depth)."""
    it = iter(urls)
    content = [
        {"type": "image_url", "image_url": {"url": next(it)}} if part["type"] == "image" else part
        for part in sif_user_message(question, suffix)["content"]
    ]
    return {"role": "user", "content": content}


_SENT_AS_IS = {"JPEG": "image/jpeg", "PNG": "image/png"}


def file_data_url(path, max_pixels: int | None, *, depth: bool = False) -> str | None:
    """A data URL of the file's own bytes when a server can take them as they are: a JPEG or PNG
    (for a depth picture: an RGB PNG that is a `spectral_r` rendering) within `max_pixels`;
    None when the picture must be decoded and re-encoded. Saves a decode and a PNG encode per
    image, which is most of the client's CPU per request."""
    import base64

    if isinstance(path, Image.Image) or path is None:
        return None
    try:
        stat = os.stat(path)
        fmt = _sendable(str(path), stat.st_mtime_ns, stat.st_size, max_pixels, depth)
    except OSError:
        return None  # the slow path names the file in its error
    if fmt is None:
        return None
    data = Path(path).read_bytes()
    return f"data:{_SENT_AS_IS[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


@functools.lru_cache(maxsize=4096)
def _sendable(path: str, mtime_ns: int, size: int, max_pixels: int | None, depth: bool) -> str | None:
    """The file's format if it can be sent as it is, else None; once per file version (a
    benchmark asks several questions about one picture, and the depth check decodes it)."""
    with Image.open(path) as img:
        fmt, mode, (w, h) = img.format, img.mode, img.size
        if fmt not in _SENT_AS_IS or (max_pixels and w * h > max_pixels):
            return None
        if depth and (fmt != "PNG" or mode != "RGB" or detect_encoding(img) != "spectral_r"):
            return None
        if not depth and mode not in ("RGB", "L"):
            return None
    return fmt


# ---------------------------------------------------------------- shared plumbing


class _Base:
    """Image preparation and sampling parsing; subclasses implement `_generate_batch` (a batch
    of prompts in one model call) and `_stream`."""

    name = "backend"
    batch_size = 1

    def __init__(self, depth_model: str = DEFAULT_DEPTH_MODEL, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.depth_model = depth_model
        self.max_pixels = max_pixels

    def images(self, image, depth) -> SifImages:
        return prepare_images(image, depth, depth_model=self.depth_model)

    def generate(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> str:
        return self._generate(self.images(image, depth), question, suffix, Sampling(**sampling))

    def stream(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> Iterator[str]:
        return self._stream(self.images(image, depth), question, suffix, Sampling(**sampling))

    def _generate(self, images: SifImages, question: str, suffix: str, sampling: Sampling) -> str:
        return self._generate_batch([(images, question, suffix)], sampling)[0]

    def _generate_batch(self, batch: list[tuple[SifImages, str, str]], sampling: Sampling) -> list[str]:
        raise NotImplementedError

    def _stream(self, images: SifImages, question: str, suffix: str, sampling: Sampling) -> Iterator[str]:
        raise NotImplementedError

    def generate_many(self, requests: Iterable[GenerateRequest], **sampling) -> Iterator[Answer]:
        """(key, answer or error) for each request, in `batch_size` chunks of one model call each.

        A request whose images cannot be prepared gets its error at once; a chunk whose model call
        fails gives that error to each of its requests. Nothing else stops the iteration."""
        params = Sampling(**sampling)
        it = iter(requests)
        while chunk := list(itertools.islice(it, max(1, self.batch_size))):
            ready = []
            for req in chunk:
                try:
                    ready.append((req.key, (self.images(req.image, req.depth), req.question, req.suffix)))
                except Exception as exc:  # a bad picture is that request's problem
                    yield req.key, exc
            if not ready:
                continue
            try:
                texts = self._generate_batch([item for _, item in ready], params)
            except Exception as exc:
                yield from ((key, exc) for key, _ in ready)
                continue
            yield from zip((key for key, _ in ready), texts)


class _Drained(Iterator):
    """What `produce(emit, stop)`, run in a thread from the first `next()`, emits; its error is
    re-raised. `ready()` takes the items already emitted without waiting (a consumer commits
    them together). Closing early sets `stop`, which producers check to end their work, and
    waits a little for them, so that no generation outlives its consumer by more than a step."""

    _DONE = object()

    def __init__(self, produce: Callable[[Callable, threading.Event], None]):
        self._produce, self._stop = produce, threading.Event()
        self._items: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._end: object = None  # the end (or failure) met by `ready()`, for the next `next()`

    def _run(self):
        try:
            self._produce(self._items.put, self._stop)
        except BaseException as exc:  # handed to the consumer
            self._items.put(_Failure(exc))
        finally:
            self._items.put(self._DONE)

    def __next__(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="sif-generate")
            self._thread.start()
        item, self._end = (self._end, None) if self._end is not None else (self._items.get(), None)
        if item is self._DONE:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.exc
        return item

    def ready(self) -> list:
        out = []
        while self._end is None:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                break
            if item is self._DONE or isinstance(item, _Failure):
                self._end = item
            else:
                out.append(item)
        return out

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=STOP_WAIT_S)

    def __del__(self):
        self._stop.set()


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
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        batch_size: int | None = None,
    ):
        super().__init__(depth_model, max_pixels)
        import torch
        from transformers import AutoModelForImageTextToText

        from training.modeling import load_processor

        model, adapter = _split_adapter(model, adapter)
        self.model_name, self.adapter = model, adapter
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE["hf"]
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = (
            getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
        )
        try:
            self.processor = load_processor(model, max_pixels, only_lower=True)
            net = AutoModelForImageTextToText.from_pretrained(model, dtype=torch_dtype)
        except OSError as exc:
            raise ConfigError(f"model {model!r} could not be loaded ({exc})") from None
        if adapter:
            from peft import PeftModel

            net = PeftModel.from_pretrained(net, adapter)
        self.model = net.to(self.device).eval()

    def _batch_inputs(self, batch: list[tuple[SifImages, str, str]]):
        """Model inputs of a batch, left-padded so that every prompt ends where generation starts."""
        prompts = [
            self.processor.apply_chat_template(
                [sif_user_message(question, suffix)], tokenize=False, add_generation_prompt=True
            )
            for _, question, suffix in batch
        ]
        pictures = [[images.image, images.depth] for images, _, _ in batch]
        return self.processor(text=prompts, images=pictures, return_tensors="pt", padding=True, padding_side="left").to(
            self.device
        )

    def _inputs(self, images: SifImages, question: str, suffix: str):
        return self._batch_inputs([(images, question, suffix)])

    def _generate_batch(self, batch, sampling: Sampling) -> list[str]:
        import torch

        inputs = self._batch_inputs(batch)
        tok = self.processor.tokenizer
        with torch.no_grad():
            out = self.model.generate(**inputs, **sampling.hf(), pad_token_id=tok.pad_token_id)
        return tok.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def _stream(self, images, question, suffix, sampling: Sampling) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        inputs = self._inputs(images, question, suffix)

        class StopWhenClosed(StoppingCriteria):
            def __init__(self, stop):
                self.stop = stop

            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool, device=input_ids.device)

        def produce(emit: Callable, stop: threading.Event) -> None:
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

        return _Drained(produce)


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

    `generate_many` hands each chunk of `batch_size` prompts to one `LLM.generate` call (vLLM
    schedules them together); images above `max_pixels` are scaled down by the model's processor
    (`mm_processor_kwargs`). vLLM's offline `LLM` does not stream: `stream` yields the whole
    completion as one piece. Written against vLLM's documented offline API (`LLM`,
    `SamplingParams`, `LoRARequest`); CI has no GPU, so tests stand a fake `LLM` in for it.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        depth_model: str = DEFAULT_DEPTH_MODEL,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        batch_size: int | None = None,
        **engine,
    ):
        super().__init__(depth_model, max_pixels)
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError("the vllm backend needs vLLM: pip install 'sif-workbench[vllm]' (GPU machines)") from None
        from transformers import AutoProcessor

        model, adapter = _split_adapter(model, adapter)
        self.model_name, self.adapter = model, adapter
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE["vllm"]
        self.processor = AutoProcessor.from_pretrained(model)
        engine.setdefault("limit_mm_per_prompt", {"image": 2})
        if max_pixels:
            engine.setdefault("mm_processor_kwargs", {"max_pixels": int(max_pixels)})
        self.llm = LLM(model=model, enable_lora=bool(adapter), **engine)

    def _generate_batch(self, batch, sampling: Sampling) -> list[str]:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        prompts = [
            {
                "prompt": self.processor.apply_chat_template(
                    [sif_user_message(question, suffix)], tokenize=False, add_generation_prompt=True
                ),
                "multi_modal_data": {"image": [images.image, images.depth]},
            }
            for images, question, suffix in batch
        ]
        params = SamplingParams(
            max_tokens=sampling.max_new_tokens,
            top_p=sampling.top_p,
            temperature=(sampling.temperature or 1.0) if sampling.sample else 0.0,
        )
        lora = LoRARequest("adapter", 1, self.adapter) if self.adapter else None
        outputs = self.llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        return [out.outputs[0].text for out in outputs]

    def _stream(self, images, question, suffix, sampling: Sampling) -> Iterator[str]:
        yield self._generate(images, question, suffix, sampling)


# ---------------------------------------------------------------- OpenAI-compatible


class OpenAIBackend(_Base):
    """Any OpenAI-compatible chat server, through the shared `common.openai_client` client.

    `generate_many` keeps `concurrency` requests in flight; pictures are prepared in a few
    threads (a JPEG/PNG within `max_pixels`, and a `spectral_r` depth PNG, are sent as their
    own bytes), so the client's CPU per request stays small next to the server's latency."""

    name = "openai"
    prep_threads = 4

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        depth_model: str = DEFAULT_DEPTH_MODEL,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = 300.0,
        max_retries: int = 3,
    ):
        super().__init__(depth_model, max_pixels)
        from common.openai_client import ChatConfig

        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self.config = ChatConfig.resolve(
            base_url, model, timeout_s=timeout_s, max_retries=max_retries, concurrency=concurrency
        )
        self.model_name = self.config.model

    def _messages(self, images, question, suffix) -> list[dict]:
        return [openai_user_message(images, question, suffix, self.max_pixels)]

    def request_message(self, req: GenerateRequest) -> dict:
        """The user message of a request, sending picture files as they are where a server can take them."""
        from common.openai_client import image_data_url

        given = [file_data_url(req.image, self.max_pixels), file_data_url(req.depth, self.max_pixels, depth=True)]
        if None in given:
            images = self.images(req.image, req.depth)
            made = (images.image, images.depth)
            given = [url or image_data_url(fit_pixels(made[i], self.max_pixels)) for i, url in enumerate(given)]
        return user_message_with_urls([str(url) for url in given], req.question, req.suffix)

    def generate(self, image, depth, question: str, *, suffix: str = SIF_SUFFIX, **sampling) -> str:
        from common.openai_client import complete_sync

        params = Sampling(**sampling).openai()
        message = self.request_message(GenerateRequest(None, image, depth, question, suffix))
        return complete_sync(self.config, [message], **params).text

    def generate_many(self, requests: Iterable[GenerateRequest], **sampling) -> Iterator[Answer]:
        """(key, answer or error) in the order answers arrive, `concurrency` requests in flight.
        Closing the iterator early cancels the requests still in flight."""
        from common.openai_client import ChatClient

        params = Sampling(**sampling).openai()

        def produce(emit: Callable, stop: threading.Event) -> None:
            async def run() -> None:
                loop = asyncio.get_running_loop()
                with ThreadPoolExecutor(self.prep_threads, thread_name_prefix="sif-prepare") as pool:
                    async with ChatClient(self.config) as client:

                        async def one(req: GenerateRequest):
                            try:
                                message = await loop.run_in_executor(pool, self.request_message, req)
                                emit((req.key, (await client.complete([message], **params)).text))
                            except Exception as exc:  # that request's failure, handed to the caller
                                emit((req.key, exc))

                        pending: set = set()
                        for req in requests:
                            if stop.is_set():
                                break
                            if len(pending) >= 2 * self.concurrency:  # prepared ahead, not all at once
                                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                            pending.add(asyncio.create_task(one(req)))
                        if stop.is_set():
                            for task in pending:
                                task.cancel()
                        await asyncio.gather(*pending, return_exceptions=True)

            asyncio.run(run())

        return _Drained(produce)

    def _stream(self, images, question, suffix, sampling: Sampling) -> Iterator[str]:
        from common.openai_client import ChatClient

        messages = self._messages(images, question, suffix)

        def produce(emit: Callable, stop: threading.Event) -> None:
            async def run() -> None:
                async with ChatClient(self.config) as client:
                    pieces: AsyncIterator[str] = client.stream(messages, **sampling.openai())
                    async for piece in pieces:
                        if stop.is_set():
                            break
                        emit(piece)

            asyncio.run(run())

        return _Drained(produce)


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
    ($SIF_OPENAI_MODEL). Options a backend does not use are a ValueError (`concurrency` is
    openai's, `batch_size` hf's and vllm's)."""
    if opts.get("depth_model") is None:
        opts.pop("depth_model", None)
    if kind in ("hf", "vllm"):
        if "concurrency" in opts:
            raise ConfigError(f"concurrency is for the openai backend; the {kind} backend takes batch_size")
        if model == DEMO_MODEL:
            opts.setdefault("depth_model", FLAT)
        model = resolve_model(model, kind)
        return (HFBackend if kind == "hf" else VLLMBackend)(model, adapter=adapter, **opts)
    if kind == "openai":
        if adapter:
            raise ConfigError("the openai backend serves adapters by name: pass the served name as --model")
        if "batch_size" in opts:
            raise ConfigError("batch_size is for the hf and vllm backends; the openai backend takes concurrency")
        return OpenAIBackend(model, base_url=base_url, **opts)
    raise ConfigError(f"unknown backend {kind!r}; choose from {', '.join(BACKENDS)}")
