"""``python -m mopo_kit`` is the same as ``mopo-kit``."""

from mopo_kit.cli import main

raise SystemExit(main())
