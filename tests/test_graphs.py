"""check_parity: non-determinism is eager's, not a backend's; a torch.compile that ran
eager code is not ok; bad mode names are clear errors."""
import pytest
import torch

from bench.graphs import check_parity


class Noisy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x) + torch.rand_like(x)


class NotCompiled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    @torch._dynamo.disable
    def forward(self, x):
        return self.lin(x)


def test_nondeterministic_model_is_reported_on_eager():
    results = {r.mode: r for r in check_parity(Noisy(), (torch.randn(2, 4),), modes=("eager", "trace"))}
    assert results["eager"].status == "mismatch"
    assert "non-deterministic" in results["eager"].detail


def test_compile_that_ran_eager_code_is_not_ok():
    results = {r.mode: r for r in check_parity(NotCompiled(), (torch.randn(2, 4),), modes=("eager", "compile"),
                                               backend="eager")}
    assert results["compile"].status == "error", results["compile"]
    assert "eager code" in results["compile"].detail


def test_unknown_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid: eager, script, trace, compile, export"):
        check_parity(torch.nn.Linear(2, 2), (torch.randn(1, 2),), modes=("jit",))


def test_graph_break_counted_and_still_ok():
    class Breaks(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            h = self.lin(x)
            if h.sum() > 0:  # data-dependent: a graph break
                return h * 2
            return h

    results = {r.mode: r for r in check_parity(Breaks(), (torch.ones(2, 4),), probe_inputs=[(-torch.ones(3, 4),)],
                                               modes=("eager", "compile"), backend="eager")}
    assert results["compile"].status == "ok"
    assert results["compile"].graph_breaks >= 1


def test_reordered_float32_arithmetic_is_judged_against_fp64():
    """A mode whose difference from eager exceeds the fp32 tolerance but is no further from
    the fp64 reference than eager itself is ok (torch._dynamo's RMSE rule); a wrong one is not."""
    from bench.graphs.parity import _within_fp64_rule

    gold = [torch.linspace(0, 1000, 50, dtype=torch.float64)]
    eager = [gold[0].float() + 0.05]
    reordered = [gold[0].float() - 0.05]  # 0.1 from eager: beyond atol + rtol * |x| for small x
    wrong = [gold[0].float() + 5.0]
    assert _within_fp64_rule(gold, eager, reordered)[0]
    assert not _within_fp64_rule(gold, eager, wrong)[0]


def test_compile_rows_count_recompiles_for_probe_shapes():
    """Probes of two new batch sizes: one automatic-dynamic recompile, then the dynamic graph
    serves the next size; a model that specialises on the batch size shows one per size."""
    import torch

    from bench.graphs import check_parity

    class Unrolled(torch.nn.Module):
        def forward(self, x):
            return torch.stack([row * 2 for row in x.unbind(0)])

    probes = [(torch.randn(5, 3),), (torch.randn(6, 3),)]
    for model, expected in ((torch.nn.Sequential(torch.nn.Linear(3, 3)), 1), (Unrolled(), 2)):
        results = {r.mode: r for r in check_parity(model, (torch.randn(4, 3),), probes, modes=("eager", "compile"),
                                                   backend="aot_eager")}
        assert results["compile"].recompiles == expected, results["compile"]


class _Wide(torch.nn.Module):
    """Logits of scale ~1e4 (eager's fp32 rounding is large there) and a bias of scale 1e-3."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(256, 2000)
        with torch.no_grad():
            self.lin.weight.mul_(3000.0)

    def forward(self, x):
        return torch.nn.functional.linear(x, self.lin.weight) + 1e-3 * self.lin.bias


class _NegatedGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -g


class _WrongBiasGrad(torch.nn.Module):
    """The same parameters; the bias gradient comes back negated."""

    def __init__(self, model):
        super().__init__()
        self.lin = model.lin

    def forward(self, x):
        return torch.nn.functional.linear(x, self.lin.weight) + 1e-3 * _NegatedGrad.apply(self.lin.bias)


def test_a_wrong_small_gradient_cannot_hide_behind_large_logits(monkeypatch):
    """The fp64 rule is applied per tensor: the negated bias gradient is a mismatch named by
    its parameter, although its RMSE is below eager's own RMSE on the logits."""
    from bench.graphs import builders

    model = _Wide()
    monkeypatch.setattr(builders, "build", lambda mode, m, inputs, backend="inductor": (_WrongBiasGrad(m), None))
    result = check_parity(model, (torch.randn(8, 256),), modes=("eager", "trace"))[1]
    assert result.status == "mismatch", result
    assert "grad of lin.bias" in result.detail, result.detail


def test_the_fp64_rule_is_judged_per_tensor():
    from bench.graphs.parity import _within_fp64_rule

    gold = [torch.full((1000,), 1e4, dtype=torch.float64), torch.full((10,), 1e-3, dtype=torch.float64)]
    eager = [gold[0] + 1.0, gold[1].clone()]
    wrong = [gold[0] - 1.0, -gold[1]]  # bias error 2e-3, far below the logits' rmse of 1
    within, note = _within_fp64_rule(gold, eager, wrong, ["logits", "grad of bias"])
    assert not within and note.startswith("grad of bias"), note
