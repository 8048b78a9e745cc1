"""``python -m berg_app`` runs the ``berg`` command."""

from berg_app.cli import main

main()
