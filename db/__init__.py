"""The SQLite store: samples, revisions, reviews, runs; importers and exporters around it."""

from db.exporters import export_rl, export_sft
from db.importers import import_dataset, import_file
from db.stats import store_stats
from db.store import ChainRevision, ConflictError, Review, Sample, Store, StoreError

__all__ = [
    "ChainRevision",
    "ConflictError",
    "Review",
    "Sample",
    "Store",
    "StoreError",
    "export_rl",
    "export_sft",
    "import_dataset",
    "import_file",
    "store_stats",
]
