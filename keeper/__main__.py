"""``python -m keeper`` = ``xmargin-keeper``."""

from .cli import main

main()
