"""The tiny adapt_head settings and study file shared by the adapt and source tests."""

from __future__ import annotations

from hls_tune.engine.settings import DataConfig

DATA = DataConfig(
    dataset="digits", image_size=8, imbalance_ratio=10, val_fraction=0.15,
    max_per_class=30, val_per_class=10, many_above=20, few_below=8,
)  # fmt: skip
# The per-op reference supernet (fused=False) is bit-for-bit deterministic on the CPU.
ADAPT = dict(
    method="adapt_head", data=DATA, channels=4, layers=3, epochs=1, head_epochs=1,
    adapt_alpha_epochs=2, batch_size=16, flip=False, crop_padding=1, device="cpu",
    weight_lr=0.1, alpha_lr=0.05, fused=False,
)  # fmt: skip

ADAPT_STUDY = """
[study]
name = "adapt"
metric = "val_balanced_accuracy"
n_trials = 2
[study.sampler]
type = "grid"
[study.pruner]
type = "none"

[data]
dataset = "digits"
image_size = 8
val_fraction = 0.15
imbalance_ratio = 10
max_per_class = 30
val_per_class = 10
many_above = 20
few_below = 8

[engine]
method = "adapt_head"
channels = 4
layers = 3
epochs = 2
head_epochs = 1
adapt_alpha_epochs = 1
batch_size = 16
flip = false
crop_padding = 1
device = "cpu"
fused = false

[space]
adapt_mode = {ADAPT_MODES}
"""
