"""Checkpoints of a notebook and the restore of a cell from its history (SPEC §13)."""
