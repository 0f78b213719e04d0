"""Model backends (HF, vLLM, OpenAI-compatible), single-image inference and the demo app."""

from inference.backends import Backend, load_backend, prepare_images
from inference.infer import InferenceResult, run_inference, write_outputs

__all__ = ["Backend", "InferenceResult", "load_backend", "prepare_images", "run_inference", "write_outputs"]
