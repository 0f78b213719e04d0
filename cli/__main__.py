"""`python -m cli`: the same app as the `sif` console script."""

from cli.main import app

app()
