"""Architectures: the genotype record (no torch), its derivation from α and DARTS-format I/O
and the loader of every genotype form (`load`);
the supernets (`supernet`, the faster `fused`), the discrete networks (`network`) and their
operations (`primitives`), which need torch and are imported from their modules."""

from hls_tune.engine.nas.darts_format import darts_python_module, parse_darts_python
from hls_tune.engine.nas.derive import derive_cell, derive_genotype
from hls_tune.engine.nas.genotype import (
    BUILTIN_GENOTYPES,
    PRIMITIVES,
    Edge,
    Genotype,
    builtin_genotype,
    cell_nodes,
)
from hls_tune.engine.nas.load import load_genotype

__all__ = [
    "BUILTIN_GENOTYPES",
    "PRIMITIVES",
    "Edge",
    "Genotype",
    "builtin_genotype",
    "cell_nodes",
    "darts_python_module",
    "derive_cell",
    "derive_genotype",
    "load_genotype",
    "parse_darts_python",
]
