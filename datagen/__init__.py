"""Data generation: reverse-expansion plans, depth estimation and the teacher pipeline."""

from datagen.generation import GenerateConfig, GenerateSummary, generate

__all__ = ["GenerateConfig", "GenerateSummary", "generate"]
