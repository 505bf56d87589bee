"""DARTS search space: operations, cells, supernets and genotypes."""
