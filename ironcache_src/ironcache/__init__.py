"""IronCache: a Redis-protocol cache server that adopts systemd's listening socket."""

from ironcache._version import __version__

__all__ = ["__version__"]
