"""Mutation testing of the xmargin contracts.

A mutant is one deliberate bug: an exact piece of source in one contract file
and its replacement (`catalogue.MUTANTS`). `materialise` writes a copy of
contracts/ holding the mutated file and every deployable that imports it;
tests deploy it through tests/protocol.py with XMARGIN_CONTRACTS_DIR set to
that copy. `python -m tools.mutation run` runs the invariant machine and the
regression tests against every mutant and writes docs/mutation.md.
"""

from tools.mutation.catalogue import MUTANTS, Mutant, by_name
from tools.mutation.materialise import materialise

__all__ = ["MUTANTS", "Mutant", "by_name", "materialise"]
