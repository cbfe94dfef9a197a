"""Read replicas with read-your-writes (issue 18, docs/scaling.md).

- ``tokens``: the consistency token, a WAL position in PostgreSQL's text form;
- ``replicaset``: the configured hot standbys, their pools and health (a
  monitor task, once a second, off the request path);
- ``routing``: the read seam, ``await read(query, fresh=…)``, which services
  use for every read a replica may answer;
- ``http``: the middleware that carries the token in (requests) and out
  (every mutation's answer).
- ``lifespan``: how the app starts and stops them.

With ``DATABASE_REPLICA_URLS`` empty none of this runs: ``read`` is the
primary's ``connection()`` plus one check of a module variable.
"""
