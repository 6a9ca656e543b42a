"""``python -m billing_core``: the operator command line (``billing-core``, see docs/cli.md)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
