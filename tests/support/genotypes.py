"""Genotypes and genotype texts the genotype, DARTS-format, loader and training tests share."""

from __future__ import annotations

import json
from collections import namedtuple

from hls_tune.engine.nas.genotype import BUILTIN_GENOTYPES, Genotype, builtin_genotype

CONCAT = (2, 3, 4, 5)

# The DARTS_V2 line of the original DARTS cnn/genotypes.py (quark0/darts).
ORIGINAL_DARTS_V2_LINE = (
    "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)

BBN_GENOTYPE = builtin_genotype("darts_v2").to_dict() | {
    "head_conventional": [["sep_conv_5x5", 0], ["dil_conv_3x3", 1]] * 4,
    "head_rebalancing": [["skip_connect", 0], ["max_pool_3x3", 1]] * 4,
}

DARTS_V1, DARTS_V2 = BUILTIN_GENOTYPES["darts_v1"], BUILTIN_GENOTYPES["darts_v2"]
PC_DARTS = BUILTIN_GENOTYPES["pc_darts"]

# The namedtuple of the original DARTS code: its repr is the line DARTS logs every epoch.
DartsGenotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def darts_repr(genotype: Genotype) -> str:
    """``Genotype(normal=[...], normal_concat=range(2, 6), ...)``, as DARTS prints it."""
    return repr(
        DartsGenotype(
            normal=list(genotype.normal),
            normal_concat=range(2, 6),
            reduce=list(genotype.reduce),
            reduce_concat=range(2, 6),
        )
    )


# A genotypes.py laid out like the original DARTS one: PRIMITIVES, a NASNet cell with an op
# hls-tune does not have, the two DARTS cells and the DARTS alias.
DARTS_GENOTYPES_PY = "\n".join(
    [
        "from collections import namedtuple",
        "",
        "Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')",
        "",
        "PRIMITIVES = ['none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect',",
        "              'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5']",
        "",
        "NASNet = Genotype(",
        "  normal = [('sep_conv_5x5', 1), ('sep_conv_7x7', 0)],",
        "  normal_concat = [2],",
        "  reduce = [('skip_connect', 0), ('skip_connect', 1)],",
        "  reduce_concat = [2],",
        ")",
        f"DARTS_V1 = {darts_repr(DARTS_V1)}",
        f"DARTS_V2 = {darts_repr(DARTS_V2)}",
        "",
        "DARTS = DARTS_V2",
        "",
    ]
)

# Lines as DARTS' train_search.py logs them ('%(asctime)s %(message)s'), one per epoch.
SEARCH_LOG = "\n".join(
    [
        "06/14 10:02:11 AM args = Namespace(batch_size=64, learning_rate=0.025)",
        "06/14 10:02:15 AM epoch 0 lr 2.500000e-02",
        f"06/14 10:02:15 AM genotype = {darts_repr(PC_DARTS)}",
        "06/14 10:09:40 AM train_acc 41.300000",
        "06/14 10:09:41 AM epoch 1 lr 2.497632e-02",
        f"06/14 10:09:41 AM genotype = {darts_repr(DARTS_V1)}",
        "06/14 10:17:02 AM valid_acc 52.100000",
    ]
)


def _darts_v2_with(**cells) -> str:
    return json.dumps(builtin_genotype("darts_v2").to_dict() | cells)
