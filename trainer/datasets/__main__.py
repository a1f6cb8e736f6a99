"""`python -m prp.trainer.datasets {make-default, show}`."""

from .subset import main

raise SystemExit(main())
