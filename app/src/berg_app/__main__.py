"""``python -m berg`` runs the ``berg`` command."""

from berg_app.cli import main

main()
