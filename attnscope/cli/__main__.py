"""``python -m attnscope.cli ...``: the same as the ``attnscope`` command."""

from attnscope.cli import main

raise SystemExit(main())
