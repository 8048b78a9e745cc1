"""``python -m berg`` runs the ``berg`` command."""

from berg.cli import main

main()
