"""``python -m doku_async``: the ``doku-async`` command line."""

from .cli import main

raise SystemExit(main())
