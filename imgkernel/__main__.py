"""``python -m imgkernel`` runs the command line."""

from imgkernel.cli import main

main()
