"""The fused supernets against the per-op reference (the oracle): same values, gradients and
BatchNorm statistics for every cell kind, supernet, partial-channel setting, mode and layout.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine import search
from hls_tune.engine.nas import fused
from hls_tune.engine.nas.fused import (
    FusedBbnDartsSupernet,
    FusedDartsSupernet,
    FusedSearchCell,
    depthwise_conv2d,
)
from hls_tune.engine.nas.supernet import (
    BbnDartsSupernet,
    DartsSupernet,
    SearchCell,
    node_normalised_edge_weights,
)
from hls_tune.engine.settings import SearchConfig

RTOL, ATOL = 1e-4, 1e-5  # float32: outputs and BN buffers
KINDS = {
    "plain": (DartsSupernet, FusedDartsSupernet),
    "bbn": (BbnDartsSupernet, FusedBbnDartsSupernet),
}


def randomise(model: nn.Module, generator: torch.Generator) -> None:
    """Distinct running statistics per BN module (so eval mode and per-edge updates matter)
    and α, β away from uniform (so every candidate's weight differs)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                module.num_batches_tracked.fill_(3)
        for p in model.architecture_parameters():
            p.copy_(torch.randn(p.shape, generator=generator))


@pytest.fixture(scope="module")
def pristine() -> dict[tuple[str, int], tuple[nn.Module, nn.Module, dict]]:
    """One (reference, fused, initial state) per model kind and partial-channel setting."""
    pairs = {}
    for kind, (reference_cls, fused_cls) in KINDS.items():
        for partial_channels in (1, 2):
            torch.manual_seed(0)
            reference = reference_cls(3, 5, channels=8, layers=3, partial_channels=partial_channels)
            randomise(reference, torch.Generator().manual_seed(1))
            fused_model = fused_cls(3, 5, channels=8, layers=3, partial_channels=partial_channels)
            fused_model.load_state_dict(reference.state_dict())
            state = {k: v.clone() for k, v in reference.state_dict().items()}
            pairs[kind, partial_channels] = (reference, fused_model, state)
    return pairs


def model_pair(pristine, kind: str, partial_channels: int = 1, channels_last: bool = False):
    """The cached pair for (kind, K), reset to the initial state and the wanted layout."""
    reference, fused_model, state = pristine[kind, partial_channels]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for model in (reference, fused_model):
        model.load_state_dict(state)
        model.to(memory_format=memory_format)
        model.train()
    return reference, fused_model


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Elementwise rtol 1e-4 / atol 1e-5 (float32) or 1e-9 / 1e-12 (float64)."""
    rtol, atol = (1e-9, 1e-12) if expected.dtype == torch.float64 else (RTOL, ATOL)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def assert_close_gradient(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Like `assert_close`, atol scaled by the tensor's largest entry: a float32 gradient is
    a sum of many terms of both signs (train-mode BN over a few pixels) whose rounding error
    is relative to the largest of them, not to each entry (seen: 1.3e-5 of the maximum)."""
    rtol, atol = (1e-9, 1e-12) if expected.dtype == torch.float64 else (RTOL, 1e-4)
    scale = float(expected.abs().max().clamp(min=1.0 if expected.dtype != torch.float64 else 0))
    torch.testing.assert_close(
        actual, expected, rtol=rtol, atol=atol * max(scale, 1e-3), msg=lambda m: f"{what}: {m}"
    )


def assert_same_buffers(fused_model: nn.Module, reference: nn.Module) -> None:
    expected = reference.state_dict()
    for key, value in fused_model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert int(value) == int(expected[key]), key
        else:
            assert_close(value, expected[key], key)


def test_fused_supernets_keep_the_reference_modules_and_state_dict_keys(pristine):
    for (kind, partial_channels), (reference, fused_model, _) in pristine.items():
        assert list(fused_model.state_dict()) == list(reference.state_dict())
        assert [n for n, _ in fused_model.named_parameters()] == [
            n for n, _ in reference.named_parameters()
        ]
        cells = [m for m in fused_model.modules() if isinstance(m, SearchCell)]
        assert cells and all(type(c) is FusedSearchCell for c in cells), (kind, partial_channels)
        assert isinstance(fused_model, type(reference))  # the engine's isinstance checks


@pytest.fixture(scope="module")
def cells(pristine) -> dict[tuple[str, int], tuple[nn.Module, nn.Module, torch.Tensor, ...]]:
    """(reference cell, fused cell, s0, s1, initial cell state) for the normal, reduction and
    head cell of the BBN supernets; s0, s1 are what the cell receives in a real forward pass
    (captured by a hook)."""
    found = {}
    for partial_channels in (1, 2):
        # Both models back to the initial state, whatever an earlier test left in them
        # (the pairs are shared by the module; the order of tests is not fixed).
        reference, fused_model = model_pair(pristine, "bbn", partial_channels)
        state = pristine["bbn", partial_channels][2]
        named = {
            name: (
                model.backbone.cells[0],
                model.backbone.cells[1],
                model.head_rebalancing.cells[0],
            )
            for name, model in (("reference", reference), ("fused", fused_model))
        }
        seen: dict[int, tuple] = {}

        def capture(index: int, args: tuple, seen: dict[int, tuple] = seen) -> None:
            seen.setdefault(index, args)  # returns None: the hook must not replace the inputs

        hooks = [
            cell.register_forward_pre_hook(lambda _m, args, i=i: capture(i, args))
            for i, cell in enumerate(named["reference"])
        ]
        x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            reference.branch_logits(x, x.flip(0))
        for hook in hooks:
            hook.remove()
        reference.load_state_dict(state)
        for i, name in enumerate(("normal", "reduce", "head")):
            ref_cell, fused_cell = named["reference"][i], named["fused"][i]
            cell_state = {k: v.clone() for k, v in ref_cell.state_dict().items()}
            found[name, partial_channels] = (ref_cell, fused_cell, *seen[i][:2], cell_state)
    return found


@pytest.mark.parametrize(
    ("dtype", "channels_last"),
    [(torch.float64, False), (torch.float32, True)],
    ids=["float64-nchw", "float32-channels_last"],
)
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("partial_channels", [1, 2])
@pytest.mark.parametrize("cell_name", ["normal", "reduce", "head"])
def test_fused_cell_matches_the_reference_cell(
    cells, cell_name, partial_channels, mode, dtype, channels_last
):
    """Outputs, α/β gradients, input and weight gradients, BN running stats of one cell."""
    reference, fused_cell, s0, s1, state = cells[cell_name, partial_channels]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    try:
        for cell in (reference, fused_cell):
            cell.to(dtype=dtype, memory_format=memory_format).load_state_dict(state)
            getattr(cell, mode)()
        generator = torch.Generator().manual_seed(3)
        alpha = torch.randn(14, 8, generator=generator, dtype=dtype, requires_grad=True)
        beta = torch.randn(14, generator=generator, dtype=dtype, requires_grad=True)
        s0, s1 = (
            s.to(dtype).contiguous(memory_format=memory_format).requires_grad_() for s in (s0, s1)
        )
        outputs, grads = [], []
        for cell in (reference, fused_cell):
            edge_weights = None
            if partial_channels > 1:
                edge_weights = node_normalised_edge_weights(beta, 4)
            out = cell(s0, s1, F.softmax(alpha, dim=-1), edge_weights)
            probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(4), dtype=dtype)
            inputs = [alpha, beta, s0, s1, *cell.parameters()]
            grads.append(torch.autograd.grad((out * probe).sum(), inputs, allow_unused=True))
            outputs.append(out)
        assert_close(outputs[1], outputs[0], "cell output")
        if channels_last:
            assert outputs[1].is_contiguous(memory_format=torch.channels_last)
        names = ["alpha", "beta", "s0", "s1", *(n for n, _ in reference.named_parameters())]
        for name, got, expected in zip(names, grads[1], grads[0], strict=True):
            if expected is None:  # β without partial channels
                assert got is None, name
            else:
                assert_close_gradient(got, expected, f"gradient of {name}")
        assert_same_buffers(fused_cell, reference)
    finally:  # the cells belong to the module-wide models: restore them
        for cell in (reference, fused_cell):
            cell.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            cell.load_state_dict(state)
            cell.train()


@pytest.mark.parametrize(
    ("kind", "partial_channels", "mode"),
    [
        ("plain", 1, "train"),
        ("plain", 2, "train"),
        ("bbn", 1, "train"),
        ("bbn", 2, "train"),
        ("bbn", 2, "eval"),
    ],
)
def test_fused_supernet_logits_and_gradients_match_the_reference(
    pristine, kind, partial_channels, mode
):
    """Whole supernets in the default float32 channels_last: logits, every gradient, BN
    buffers. Its tolerance has an absolute floor (float32 rounding), so gradients are held
    tight by the float64 per-tensor test below."""
    reference, fused_model = model_pair(pristine, kind, partial_channels, channels_last=True)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(4, 3, 8, 8, generator=generator)
    x_r = torch.randn(4, 3, 8, 8, generator=generator)
    y = torch.randint(0, 5, (4,), generator=generator)
    results = []
    for model in (reference, fused_model):
        getattr(model, mode)()
        logits = model.mixed_logits(x, x_r, 0.3) if kind == "bbn" else model(x)
        loss = F.cross_entropy(logits, y)
        results.append((logits, torch.autograd.grad(loss, list(model.parameters()))))
    assert_close(results[1][0], results[0][0], "logits")
    names = [n for n, _ in reference.named_parameters()]
    for name, got, expected in zip(names, results[1][1], results[0][1], strict=True):
        assert_close_gradient(got, expected, f"gradient of {name}")
    assert_same_buffers(fused_model, reference)


GRADIENT_RTOL = 1e-9  # float64, per tensor: ‖g_fused − g_reference‖ ≤ rtol · ‖g_reference‖


@pytest.fixture(scope="module")
def pristine64() -> dict[tuple[str, int], tuple[nn.Module, nn.Module, dict]]:
    """Like `pristine`, in float64, for K = 1, 2 and 4 (PC-DARTS' partial channels)."""
    pairs = {}
    for kind, (reference_cls, fused_cls) in KINDS.items():
        for partial_channels in (1, 2, 4):
            torch.manual_seed(0)
            reference = reference_cls(3, 5, channels=8, layers=3, partial_channels=partial_channels)
            randomise(reference, torch.Generator().manual_seed(1))
            reference.double()
            fused_model = fused_cls(3, 5, channels=8, layers=3, partial_channels=partial_channels)
            fused_model.double().load_state_dict(reference.state_dict())
            state = {k: v.clone() for k, v in reference.state_dict().items()}
            pairs[kind, partial_channels] = (reference, fused_model, state)
    return pairs


def assert_same_gradients_per_tensor(
    names: list[str], got: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...]
) -> None:
    """Each gradient tensor to `GRADIENT_RTOL` of its own norm (no absolute floor under
    which a small gradient passes whatever its value), and none that the reference has
    non-zero is zero in the fused model (not one entry)."""
    assert len(got) == len(expected) == len(names)
    problems = []
    for name, g, e in zip(names, got, expected, strict=True):
        assert g.dtype == torch.float64 and g.shape == e.shape, name
        reference_norm = float(e.norm())
        error = float((g - e).norm())
        if error > GRADIENT_RTOL * reference_norm:
            problems.append(f"{name}: ‖Δ‖ = {error:.3g}, ‖reference‖ = {reference_norm:.3g}")
        lost = int(((e != 0) & (g == 0)).sum())
        if lost:
            problems.append(f"{name}: {lost} entries non-zero in the reference are zero")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("partial_channels", [1, 2, 4])
@pytest.mark.parametrize(("kind", "mode"), [("plain", "train"), ("bbn", "train"), ("bbn", "eval")])
def test_fused_supernet_gradients_match_the_reference_per_tensor_in_float64(
    pristine64, kind, mode, partial_channels, channels_last
):
    """Whole supernets in float64: logits to 1e-9, and every parameter's gradient tensor to
    1e-9 of its own norm, with no absolute floor: a fused model that lost a term of any
    tensor's gradient, or zeroed one, fails."""
    reference, fused_model, state = pristine64[kind, partial_channels]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(4, 3, 8, 8, generator=generator, dtype=torch.float64)
    x_r = torch.randn(4, 3, 8, 8, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 5, (4,), generator=generator)
    x, x_r = (t.contiguous(memory_format=memory_format) for t in (x, x_r))
    results = []
    for model in (reference, fused_model):
        model.load_state_dict(state)
        model.to(memory_format=memory_format)
        getattr(model, mode)()
        logits = model.mixed_logits(x, x_r, 0.3) if kind == "bbn" else model(x)
        loss = F.cross_entropy(logits, y)
        results.append((logits, torch.autograd.grad(loss, list(model.parameters()))))
        model.to(memory_format=torch.contiguous_format).load_state_dict(state)
    assert_close(results[1][0], results[0][0], "logits")
    names = [n for n, _ in reference.named_parameters()]
    gradients = results[0][1]
    # The oracle is only as strong as the reference's gradients are non-trivial: all but a
    # few are non-zero (seen: BBN, eval, K = 4, the 4 weight tensors of one sep_conv_5x5 in
    # the first cell, of 900), and a zero one must be exactly zero in fused too.
    zero = [n for n, g in zip(names, gradients, strict=True) if float(g.norm()) == 0]
    assert len(zero) <= 4, zero
    assert_same_gradients_per_tensor(names, results[1][1], gradients)


def test_one_training_step_leaves_the_same_state(pristine):
    """An SGD step (weights and α together) on the BBN supernet: parameters and BN buffers
    stay equal."""
    kind = "bbn"
    reference, fused_model = model_pair(pristine, kind, 1, channels_last=True)
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, 8, 8, generator=generator)
    y = torch.randint(0, 5, (6,), generator=generator)
    for model in (reference, fused_model):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        logits = model.mixed_logits(x, x, 0.7) if kind == "bbn" else model(x)
        F.cross_entropy(logits, y).backward()
        optimizer.step()
    assert_same_buffers(fused_model, reference)


def test_cumulative_batch_norm_momentum_updates_every_edge_like_the_reference(cells):
    """momentum=None (cumulative average) takes the per-module path of the stat update."""
    reference, fused_cell, s0, s1, state = cells["normal", 1]
    norms = [m for cell in (reference, fused_cell) for m in cell.modules()
             if isinstance(m, nn.BatchNorm2d)]  # fmt: skip
    try:
        for norm in norms:
            norm.momentum = None
        weights = F.softmax(torch.randn(14, 8, generator=torch.Generator().manual_seed(9)), -1)
        with torch.no_grad():
            for cell in (reference, fused_cell):
                cell(s0, s1, weights)
        assert_same_buffers(fused_cell, reference)
    finally:
        for norm in norms:
            norm.momentum = 0.1
        for cell in (reference, fused_cell):
            cell.load_state_dict(state)


def test_odd_image_sizes_take_the_dilated_fallback_and_still_match(pristine):
    """Phase splitting needs even sizes; 7×7 maps use aten's dilated conv instead."""
    reference, fused_model = model_pair(pristine, "plain", 1)
    x = torch.randn(3, 3, 7, 7, generator=torch.Generator().manual_seed(6))
    grads = []
    for model in (reference, fused_model):
        out = model(x)
        grads.append((out, torch.autograd.grad(out.square().sum(), list(model.parameters()))))
    assert_close(grads[1][0], grads[0][0], "logits")
    for got, expected in zip(grads[1][1], grads[0][1], strict=True):
        assert_close_gradient(got, expected, "gradient")


def test_cpu_bf16_autocast_runs_the_fused_path_as_close_as_the_reference(pristine):
    """bf16 autocast (the CUDA default) on CPU, measured against float32. This runs the
    fused cell's autocast handling on CPU kernels, not the CUDA path (aten's CUDA kernels).

    bf16 keeps 8 mantissa bits: over the cells both paths drift from float32 by a few %
    (logits) and tens of % (α gradients of this small random model); the fused path must
    drift no more than the reference does. A wrong or missing term would drift by O(1).
    """
    reference, fused_model = model_pair(pristine, "bbn", 1, channels_last=True)
    _, _, state = pristine["bbn", 1]
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(7))

    def run(model: nn.Module, amp: bool) -> tuple[torch.Tensor, ...]:
        model.load_state_dict(state)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = model.mixed_logits(x, x.flip(0), 0.5)
        loss = logits.float().square().sum()
        return logits.float().detach(), *torch.autograd.grad(loss, model.architecture_parameters())

    exact = run(reference, False)

    def errors(values: tuple[torch.Tensor, ...]) -> list[float]:
        return [float((v - e).norm() / e.norm()) for v, e in zip(values, exact, strict=True)]

    reference_errors, fused_errors = errors(run(reference, True)), errors(run(fused_model, True))
    assert fused_errors[0] < 0.1, fused_errors
    for got, bound in zip(fused_errors, reference_errors, strict=True):
        assert got < 1.5 * bound + 0.05, (fused_errors, reference_errors)


@pytest.mark.parametrize("size", [8, 9], ids=["even", "odd"])
@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (5, 1), (3, 2), (5, 2)])
def test_custom_depthwise_backward_equals_aten(monkeypatch, kernel, dilation, size):
    """Every kernel through the hand-written backward (whatever the table picks): even sizes
    take the phase-split weight gradient for dilation 2, odd sizes aten's dilated one."""
    monkeypatch.setitem(fused.CUSTOM_DEPTHWISE_BACKWARD, (kernel, dilation), True)
    generator = torch.Generator().manual_seed(8)
    x = torch.randn(3, 6, size, size, generator=generator).to(memory_format=torch.channels_last)
    x.requires_grad_()
    weight = torch.randn(6, 1, kernel, kernel, generator=generator, requires_grad=True)
    padding = dilation * (kernel - 1) // 2
    ours = depthwise_conv2d(x, weight * 1, 1, padding, dilation)
    assert ours.grad_fn.name().endswith("_DepthwiseConv2dBackward")
    aten = F.conv2d(x, weight, None, 1, padding, dilation, 6)
    assert_close(ours, aten, "forward")
    probe = torch.randn(aten.shape, generator=generator)
    for got, expected in zip(
        torch.autograd.grad((ours * probe).sum(), (x, weight)),
        torch.autograd.grad((aten * probe).sum(), (x, weight)),
        strict=True,
    ):
        assert_close_gradient(got, expected, "gradient")


def test_custom_depthwise_backward_skips_the_weight_gradient_nobody_asked_for(monkeypatch):
    calls = []
    real = torch.ops.aten.convolution_backward

    class Spy:
        def __call__(self, *args):
            calls.append(args[-1])
            return real(*args)

    monkeypatch.setattr(fused.torch.ops.aten, "convolution_backward", Spy())
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    weight = torch.randn(4, 1, 5, 5, requires_grad=True)
    out = depthwise_conv2d(x, weight * 1, 1, 4, 2)
    torch.autograd.grad(out.sum(), x, retain_graph=True)
    assert calls == []  # input grad only: the flipped-kernel conv, no weight grad
    torch.autograd.grad(out.sum(), weight)
    assert calls == [[False, True, False]]


def test_phase_split_moves_each_2x2_phase_into_the_batch_in_both_layouts():
    x = torch.randn(2, 3, 6, 4)
    for channels_last in (False, True):
        y = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        phases = fused._tile_polyphase(y, 2, channels_last)
        assert phases.shape == (8, 6, 3, 2)
        for n, a, b in ((0, 0, 0), (0, 1, 0), (1, 0, 1), (1, 1, 1)):
            expected = x[n, :, a::2, b::2]
            torch.testing.assert_close(phases[4 * n + 2 * a + b], torch.cat([expected] * 2))


def test_build_supernet_picks_fused_by_default_and_the_reference_on_request():
    fast = search.build_supernet(SearchConfig(method="darts", channels=4, layers=3), 3, 5)
    slow = search.build_supernet(
        SearchConfig(method="hls", channels=4, layers=3, fused=False), 3, 5
    )
    assert type(fast) is FusedDartsSupernet
    assert type(slow) is BbnDartsSupernet
