"""A notebook's history (SPEC §11): its events, and the versions of one cell's code."""
