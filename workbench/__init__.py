"""The Gradio curation workbench: browse, look, edit and review chains in the store."""

from workbench.app import build_app, launch
from workbench.service import Filters, Workbench

__all__ = ["Filters", "Workbench", "build_app", "launch"]
