"""`python -m xdt`."""

from xdt.cli import main

main()
