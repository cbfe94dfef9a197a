"""Jupyter notebooks (.ipynb) in and out of Cellar, losslessly (SPEC §12); pure, no I/O.

``reading`` turns bytes into a valid nbformat 4 notebook (nbformat's reader,
v3 upgrade and validation, plus repairs listed as warnings); ``convert``
splits it into Cellar's cells, run state and extras (``schemas``) and joins
them back through nbformat's writer; ``outputs`` maps nbformat outputs to the
API's run state and back.  Routes, storage and the CLI build on these.
"""
