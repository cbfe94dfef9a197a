"""Jupyter notebooks (.ipynb) in and out of Cellar, losslessly (SPEC §12).

The pure part, no I/O: ``reading`` turns bytes into a valid nbformat 4
notebook (nbformat's reader, v3 upgrade and validation, plus repairs listed
as warnings); ``convert`` splits it into Cellar's cells, run state and
extras (``schemas``) and joins them back through nbformat's writer;
``outputs`` maps nbformat outputs to the API's run state and back;
``filenames`` makes file names of notebook names.  On these: ``services``
(import and export, for routes and CLI alike; ``cache`` keeps exports),
``controllers`` (the routes), ``importer`` and ``exporter`` (the CLI); the
statements are ``app.store.ipynb``'s.  docs/ipynb.md tells the whole story.
"""
