"""The store: every SQL statement Cellar sends, and the rows they come back as.

One module per aggregate: ``notebooks`` (``notebooks`` and ``cell_runs``;
``legacy`` for the bulk import and export of them, ``search`` for search
over them and ``cell_search``) and ``users``.  Each operation is one async
function taking the asyncpg connection first, so the caller (a service)
decides the transaction.  Statements are module constants built once at
import; rows are msgspec Structs whose SELECT lists are generated from their
fields (``rows.select_list``) and which are built positionally from records.

The package imports nothing of ``app`` outside itself (relative imports only):
``bench/floor.py`` loads it by its path and runs the very same statements.
"""
