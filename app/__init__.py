"""Cellar: the notebook store behind a reactive notebook web app."""
