"""Entry point of ``python -m moe_groupgemm``; see ``moe_groupgemm.cli``."""

from moe_groupgemm.cli import main

raise SystemExit(main())
