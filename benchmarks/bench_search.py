"""Search-step throughput of the per-op reference supernet against the fused one, in one
process, on synthetic uint8 data; prints a table, then `speedup <fused/reference images/s>`.
"""

# Measured on: see docs/performance.md (hardware, threads, torch version, tables).
#
# Both engines are `hls_tune.engine.search.Search` objects built from the same config (only the
# execution settings differ: reference = fused off, channels_last off, amp off; fused = the
# defaults), so a step is exactly the engine's: draw the weight and α batches on the device,
# α step (first order), weight step. The timed steps alternate between the variants and the
# medians are reported, because the machine may be shared. The data are synthetic uint8
# images of the configured shape with long-tailed labels (imbalance ratio 10), held on the
# device like real data; throughput does not depend on pixel values.
#
# Columns:
#   images/s   images drawn per step (α batch + weight batch, both BBN streams for hls)
#              divided by the median step time.
#   batches %  share of the step spent producing the two batches (sampling, gather,
#              augmentation, normalisation).
#   peak MiB   peak of the tensor memory allocated during one step, above the state before
#              it (activations, gradients, temporaries). CPU: one extra step per variant
#              under `torch.profiler` with profile_memory=True, summing its allocation/free
#              events in time order (tracemalloc does not see torch's allocator; RSS keeps
#              freed pages). CUDA: `torch.cuda.max_memory_allocated` minus the allocation
#              before the step.
#
# `--depthwise` prints the depthwise-backward table behind
# `hls_tune.engine.nas.fused.CUSTOM_DEPTHWISE_BACKWARD` instead. `--ops N` (CPU) adds, per variant,
# the N aten ops that took longest in one step, each op timed around its own kernel call
# (a dispatch mode, so Python and autograd overhead between ops is not counted):
# torch.profiler's per-op overhead distorts the many small calls of a step severalfold.
#
# `--bbn-batches` times the two BBN backbone passes instead (method hls, fused defaults):
# `per_branch` (the default, one backbone pass per branch batch, BBN's per-branch BatchNorm
# statistics) against `joint` (`bbn_joint_batch = true`, one concatenated pass), and ends
# with `per_branch_cost <per-branch step time / joint step time>`.
#
# Usage:
#   OMP_NUM_THREADS=1 python benchmarks/bench_search.py --config cpu --steps 7 --threads 1
#   OMP_NUM_THREADS=1 python benchmarks/bench_search.py --bbn-batches --steps 9 --threads 1

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from hls_tune.engine import search
from hls_tune.engine.data import ImageSet, LongTailData
from hls_tune.engine.device import resolve_device
from hls_tune.engine.settings import SearchConfig

CONFIGS: dict[str, dict[str, int]] = {
    # name: channels C, layers L, batch size, image side
    "tiny": {"channels": 4, "layers": 3, "batch_size": 16, "image_size": 16},
    "cpu": {"channels": 8, "layers": 5, "batch_size": 32, "image_size": 32},
    "paper": {"channels": 16, "layers": 8, "batch_size": 64, "image_size": 32},
}
NUM_CLASSES = 10
VARIANTS = {
    "reference": {"fused": False, "channels_last": False, "amp": "off"},
    "fused": {"fused": True, "channels_last": True, "amp": "auto"},
    # With --reference-channels-last: how much of the gain is the memory format alone.
    "reference_cl": {"fused": False, "channels_last": True, "amp": "off"},
}
BBN_VARIANTS = {
    "joint": {"bbn_joint_batch": True},
    "per_branch": {"bbn_joint_batch": False},
}


def synthetic_data(image_size: int, batch_size: int, seed: int = 0) -> LongTailData:
    """Random uint8 CIFAR-shaped splits with long-tailed labels (IR 10), 10 classes."""
    generator = torch.Generator().manual_seed(seed)
    per_split = max(4 * batch_size, 2 * NUM_CLASSES)
    ratios = torch.tensor([10.0 ** (-c / (NUM_CLASSES - 1)) for c in range(NUM_CLASSES)])
    names = tuple(f"class{c}" for c in range(NUM_CLASSES))

    def split(n: int, balanced: bool) -> ImageSet:
        labels = (
            torch.arange(n) % NUM_CLASSES
            if balanced
            else torch.multinomial(ratios, n, replacement=True, generator=generator)
        )
        labels[:NUM_CLASSES] = torch.arange(NUM_CLASSES)  # every class present
        images = torch.randint(
            0, 256, (n, 3, image_size, image_size), dtype=torch.uint8, generator=generator
        )
        return ImageSet(images, labels, names)

    weight, alpha = split(per_split, False), split(per_split, False)
    val, test = split(2 * NUM_CLASSES, False), split(2 * NUM_CLASSES, True)
    counts = (weight.class_counts() + alpha.class_counts() + val.class_counts()).tolist()
    return LongTailData(
        weight=weight,
        alpha=alpha,
        val=val,
        test=test,
        train_counts=tuple(counts),
        shot_group=tuple("many" for _ in counts),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


def make_config(name: str, method: str, device: str, variant: str) -> SearchConfig:
    """The engine config of one benchmark config and variant."""
    shape = CONFIGS[name]
    settings = BBN_VARIANTS.get(variant) or VARIANTS[variant]
    return SearchConfig(
        method=method,
        channels=shape["channels"],
        layers=shape["layers"],
        batch_size=shape["batch_size"],
        epochs=1,
        device=device,
        **settings,  # type: ignore[arg-type]
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Variant:
    """One engine and its timings."""

    def __init__(self, config: SearchConfig, data: LongTailData) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.engine = search.Search(config, data, self.device)
        self.engine.model.train()
        self.mixing_ratio = config.schedule.mixing(0.0) if config.is_bbn else None
        self.step_seconds: list[float] = []
        self.batch_seconds: list[float] = []
        streams = 2 if config.is_bbn else 1
        self.images_per_step = 2 * streams * config.batch_size

    def step(self) -> tuple[float, float]:
        """One engine step: (batch-production seconds, total seconds)."""
        engine, device = self.engine, self.device
        _sync(device)
        started = time.perf_counter()
        weight_batch = engine.weight_batches.next()
        alpha_batch = engine.alpha_batches.next()
        _sync(device)
        batches_done = time.perf_counter()
        engine.alpha_step(alpha_batch, weight_batch, self.mixing_ratio)
        engine.weight_step(weight_batch, self.mixing_ratio)
        _sync(device)
        finished = time.perf_counter()
        return batches_done - started, finished - started

    def timed_step(self) -> None:
        batch, total = self.step()
        self.batch_seconds.append(batch)
        self.step_seconds.append(total)

    @property
    def median_step(self) -> float:
        return statistics.median(self.step_seconds)

    @property
    def images_per_second(self) -> float:
        return self.images_per_step / self.median_step

    @property
    def batch_share(self) -> float:
        return statistics.median(
            b / t for b, t in zip(self.batch_seconds, self.step_seconds, strict=True)
        )


def peak_step_memory(runner: _Variant) -> float:
    """MiB: peak tensor memory of one step above the pre-step state (see the header)."""
    if runner.device.type == "cuda":
        torch.cuda.synchronize(runner.device)
        before = torch.cuda.memory_allocated(runner.device)
        torch.cuda.reset_peak_memory_stats(runner.device)
        runner.step()
        return (torch.cuda.max_memory_allocated(runner.device) - before) / 2**20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        runner.step()
    events = [e for e in profiler.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak / 2**20


class _OpTimer(TorchDispatchMode):
    """Seconds spent inside each aten op while active (CPU: ops run synchronously)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        self.calls[name] = self.calls.get(name, 0) + 1
        return out


def print_op_times(runners: dict[str, _Variant], top: int) -> None:
    """One more step per variant under `_OpTimer`; prints its `top` ops by time."""
    for name, runner in runners.items():
        timer = _OpTimer()
        with timer:
            runner.step()
        total = sum(timer.seconds.values())
        print(f"# {name}: {sum(timer.calls.values())} aten calls, {1e3 * total:.0f} ms inside ops")
        ranked = sorted(timer.seconds.items(), key=lambda item: -item[1])[:top]
        for op, seconds in ranked:
            print(
                f"#   {op:<34} {1e3 * seconds:8.1f} ms {100 * seconds / total:5.1f} % "
                f"{timer.calls[op]:6d} calls"
            )


def run_benchmark(args: argparse.Namespace) -> None:
    """Builds both engines, alternates timed steps, prints the table and `speedup <ratio>`."""
    torch.set_num_threads(args.threads)
    shape = CONFIGS[args.config]
    print(
        f"# config={args.config} {shape} method={args.method} device={args.device} "
        f"steps={args.steps} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"cpu={platform.processor() or platform.machine()} cores={os.cpu_count()}"
    )
    if args.device.startswith("cuda"):
        print(f"# gpu={torch.cuda.get_device_name()}")
    data = synthetic_data(shape["image_size"], shape["batch_size"])
    variants = (
        list(BBN_VARIANTS)
        if args.bbn_batches
        else [v for v in VARIANTS if v != "reference_cl" or args.reference_channels_last]
    )
    runners = {
        variant: _Variant(make_config(args.config, args.method, args.device, variant), data)
        for variant in variants
    }
    for runner in runners.values():
        for _ in range(args.warmup):
            runner.step()
    for _ in range(args.steps):
        for runner in runners.values():
            runner.timed_step()
    memory = {name: peak_step_memory(runner) for name, runner in runners.items()}
    if args.ops:
        print_op_times(runners, args.ops)
    print(f"{'variant':<12} {'images/s':>9} {'step s':>8} {'batches %':>10} {'peak MiB':>9}")
    for name, runner in runners.items():
        print(
            f"{name:<12} {runner.images_per_second:9.2f} {runner.median_step:8.3f} "
            f"{100 * runner.batch_share:10.2f} {memory[name]:9.1f}"
        )
    if args.bbn_batches:
        cost = runners["per_branch"].median_step / runners["joint"].median_step
        print(f"per_branch_cost {cost:.2f}")
        return
    ratio = runners["fused"].images_per_second / runners["reference"].images_per_second
    print(f"speedup {ratio:.2f}")


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def _depthwise_times(
    n: int, channels: int, size: int, kernel: int, dilation: int, stride: int, repeats: int
) -> dict[str, float]:
    """Median ms, channels_last, alternated: the forward; forward+backward with the input
    gradient only (what the α step needs) and with input and weight gradients (the weight
    step), for aten and for ours (`_DepthwiseConv2d` at stride 1; at stride 2, dilation 2,
    the undilated conv on the (0, 0) phase that `FusedSearchCell` runs)."""
    from hls_tune.engine.nas.fused import _DepthwiseConv2d

    padding = dilation * (kernel - 1) // 2
    x = torch.randn(n, channels, size, size).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    weight = torch.randn(channels, 1, kernel, kernel, requires_grad=True)
    out_size = (size - 1) // stride + 1
    grad = torch.randn(n, channels, out_size, out_size)
    grad = grad.contiguous(memory_format=torch.channels_last)

    def aten() -> torch.Tensor:
        return F.conv2d(x, weight, None, stride, padding, dilation, channels)

    def ours() -> torch.Tensor:
        if stride == 1:
            return _DepthwiseConv2d.apply(x, weight * 1, padding, dilation)
        even = x[:, :, ::2, ::2].contiguous(memory_format=torch.channels_last)
        return F.conv2d(even, weight, None, 1, padding // 2, 1, channels)

    def forward() -> None:
        with torch.no_grad():
            aten()

    steps = {"forward": forward}
    for name, conv in (("aten", aten), ("ours", ours)):
        steps[f"{name} α"] = lambda conv=conv: torch.autograd.grad(conv(), x, grad)
        steps[f"{name} w"] = lambda conv=conv: torch.autograd.grad(conv(), (x, weight), grad)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for fn in steps.values():
        fn()
    for _ in range(repeats):
        for name, fn in steps.items():
            times[name] += _time(fn, 1)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


DEPTHWISE_CASES = (  # (kernel, dilation, stride): the sep/dil candidates' depthwise convs
    (3, 1, 1), (5, 1, 1), (3, 2, 1), (5, 2, 1), (3, 2, 2), (5, 2, 2),
)  # fmt: skip


def depthwise_table(args: argparse.Namespace) -> None:
    """Prints forward+backward ms of the depthwise kernels, aten's and ours, per step kind."""
    torch.set_num_threads(args.threads)
    print(f"# threads={torch.get_num_threads()} torch={torch.__version__} channels_last, "
          f"median ms of {args.steps}; α: input grad only, w: input and weight grads")  # fmt: skip
    print(
        f"{'N×C×H×W':<14} {'kernel':<11} {'fwd':>6} {'aten α':>7} {'ours α':>7} "
        f"{'aten w':>7} {'ours w':>7} {'α+w ratio':>9}"
    )
    for n, channels, size in ((32, 32, 32), (32, 64, 16), (32, 128, 8)):
        for kernel, dilation, stride in DEPTHWISE_CASES:
            ms = _depthwise_times(n, channels, size, kernel, dilation, stride, args.steps)
            ratio = (ms["aten α"] + ms["aten w"]) / (ms["ours α"] + ms["ours w"])
            print(
                f"{n}×{channels}×{size}×{size:<5} {kernel}x{kernel} d{dilation} s{stride} "
                f"{ms['forward']:6.2f} {ms['aten α']:7.2f} {ms['ours α']:7.2f} "
                f"{ms['aten w']:7.2f} {ms['ours w']:7.2f} {ratio:9.2f}"
            )


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split()))
    parser.add_argument("--config", choices=tuple(CONFIGS), default="tiny")
    parser.add_argument("--method", choices=("darts", "hls"), default="darts")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--depthwise", action="store_true", help="depthwise backward table")
    parser.add_argument(
        "--reference-channels-last",
        action="store_true",
        help="also time the reference supernet in channels_last (an extra row)",
    )
    parser.add_argument(
        "--ops",
        type=int,
        default=0,
        metavar="N",
        help="CPU only: also print the N aten ops that take longest in one step, per variant",
    )
    parser.add_argument(
        "--bbn-batches",
        action="store_true",
        help="time BBN's per-branch backbone passes against one joint pass (method hls)",
    )
    args = parser.parse_args()
    if args.bbn_batches:
        args.method = "hls"
    if args.ops and not args.device.startswith("cpu"):
        parser.error(f"--ops times ops on the CPU only, got --device {args.device}")
    if args.depthwise:
        depthwise_table(args)
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
