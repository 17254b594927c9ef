"""``python -m vaelib train|generate|evaluate ...``: see vaelib.cli."""
from .cli import main

raise SystemExit(main())
