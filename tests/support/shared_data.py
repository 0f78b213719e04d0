"""Where the project's shared real annotation files are: `../shared/data` beside the checkout."""

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("SIF_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
VSR_FILE = str(SHARED_DATA / "viscot" / "vsr_cot_train.jsonl")
REC_FILE = str(SHARED_DATA / "rec" / "REC_refcoco_unc_val.jsonl")
