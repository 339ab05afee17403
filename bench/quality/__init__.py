"""Labelled evaluation set and scorer for crop placement."""
