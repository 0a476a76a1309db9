"""Registries: the distribution-spec client (pull, push, login) and dockyard's own server.

- :mod:`.common`: media types, digests, name/reference grammar, the error classes.
- :mod:`.auth`: credentials in Docker's ``config.json`` format, the WWW-Authenticate
  challenge, htpasswd (bcrypt) users and the server's signed tokens.
- :mod:`.client`: :class:`~.client.Registry` (one remote, with its auth state) and login.
- :mod:`.pull` and :mod:`.push`: :func:`~.pull.pull` and :func:`~.push.push` over an
  :class:`~dockyard.Engine`.
- :mod:`.server`: ``dockyard registry serve``.

Only the standard library speaks HTTP here (``http.client`` and ``http.server``): both
ends are simple request/response exchanges, and the hot path (layer bytes) is a file copy
that ``socket.sendfile`` and a 1 MiB read loop do as fast as any library would.
"""
