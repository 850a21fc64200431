"""Each op check catches what it claims and cries wolf at nothing: per-tensor judgement,
derivative checks that cannot escape through "not applicable", edge inputs judged one by
one, PyTorch's own refusals told apart from the op's exceptions, and correct ops that
used to fail (once-differentiable backward, reentrant checkpoint, an extra output)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from bench.ops import check_autograd

ROOT = Path(__file__).resolve().parents[1]


def _status(report, name):
    return report.by_name(name).status


# ---- wrong ops that used to pass ----

class Fp32BufferZeroGrad(Function):
    """Forward multiplies by an fp32 buffer (a dtype mix-up on fp64 inputs); backward is zero."""

    W = torch.randn(5, 5)

    @staticmethod
    def forward(x):
        return torch.mm(x, Fp32BufferZeroGrad.W.to(x.device))

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


def test_an_fp32_buffer_and_a_zero_gradient_fail():
    """The error mentions "double": that used to make every derivative check not applicable."""
    report = check_autograd(Fp32BufferZeroGrad.apply, torch.randn(4, 5), low_precision=())
    assert not report.passed and _status(report, "gradcheck") == "violated", report
    assert "float64" in report.by_name("gradcheck").message


def _refuses_double(x):
    if x.dtype == torch.float64:
        raise RuntimeError("\"my_kernel\" not implemented for 'Double'")


class NoDoubleZeroGrad(Function):
    @staticmethod
    def forward(x):
        _refuses_double(x)
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


class NoDoubleRight(NoDoubleZeroGrad):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


def test_an_op_that_truly_refuses_fp64_still_has_its_gradient_compared():
    wrong = check_autograd(NoDoubleZeroGrad.apply, torch.randn(4, 5), low_precision=(), compile_checks=False)
    assert _status(wrong, "gradcheck") == "violated" and "fp32 finite differences" in \
        wrong.by_name("gradcheck").message, wrong
    right = check_autograd(NoDoubleRight.apply, torch.randn(4, 5), low_precision=(), compile_checks=False)
    check = right.by_name("gradcheck")
    assert check.status == "held" and check.detail["method"] == "fp32_fd", right
    assert _status(right, "gradgradcheck") == "not_applicable"


def test_a_wrong_small_gradient_fails_the_low_precision_check_by_name():
    """Per tensor: the bias gradient (scale 1e-3) negated in bf16 fails, named, although
    its error is far below the bf16 rounding of the large output."""
    class NegBiasGrad(Function):
        @staticmethod
        def forward(x, b):
            return x * 1e4 + 1e-3 * b

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, g):
            return g * 1e4, -1e-3 * g.sum(0) if g.dim() > 1 else -1e-3 * g

    report = check_autograd(NegBiasGrad.apply, torch.randn(64, 32), torch.randn(32),
                            reference=lambda x, b: x * 1e4 + 1e-3 * b, low_precision=("bf16",), compile_checks=False)
    check = report.by_name("low_precision_bf16")
    assert check.status == "violated" and "grad of input 1" in check.message, report


def test_an_edge_input_that_breaks_the_op_fails_even_if_the_reference_cannot_run_another():
    def op(x):
        return x / x.sum() if x.numel() != 3 else x.exp()  # wrong on the 3-element input

    def reference(x):
        if x.numel() == 0:
            raise RuntimeError("reference has no empty-input path")
        return x / x.sum()

    edges = [(torch.zeros(0, dtype=torch.float64, requires_grad=True),),
             (torch.rand(3, dtype=torch.float64, requires_grad=True) + 1,)]
    report = check_autograd(op, torch.rand(4) + 1, reference=reference, edge_inputs=edges, low_precision=(),
                            compile_checks=False)
    check = report.by_name("edge_inputs")
    assert check.status == "violated" and "edge input 1" in check.message, report
    assert "not compared with the reference" in check.message


class RaisingVmapRule(Function):
    @staticmethod
    def forward(x):
        return x * 2

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return g * 2

    @staticmethod
    def vmap(info, in_dims, x):
        return [x][in_dims[0] + 1] * 2, 0  # a bug in the user's rule: IndexError


def test_a_user_vmap_rule_that_raises_is_a_failure_not_a_missing_rule():
    report = check_autograd(RaisingVmapRule.apply, torch.randn(4, 5), low_precision=(), compile_checks=False)
    check = report.by_name("vmap")
    assert check.status == "violated" and "IndexError" in check.message, report


# ---- correct ops that used to fail ----

class OnceDifferentiableSquare(Function):
    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


def test_a_once_differentiable_op_passes_with_second_order_not_applicable():
    report = check_autograd(OnceDifferentiableSquare.apply, torch.randn(4, 5), reference=lambda x: x * x,
                            low_precision=(), forward_ad=False, compile_checks=False)
    assert report.passed, report
    assert _status(report, "gradgradcheck") == "not_applicable"
    assert "once_differentiable" in report.by_name("gradgradcheck").message


def test_reentrant_checkpoint_passes_saved_tensors():
    """torch.utils.checkpoint keeps its RNG state on ctx: state, not an activation."""
    from torch.utils.checkpoint import checkpoint

    from bench.ops.robustness import check_saved_tensors

    lin = torch.nn.Linear(5, 5)

    def op(x):
        return checkpoint(lambda t: torch.tanh(lin(t)), x, use_reentrant=True)

    check = check_saved_tensors(op, (torch.randn(4, 5, requires_grad=True),))
    assert check.status == "held" and "fwd_cpu_state" in check.message, check


def test_a_tensor_hidden_in_a_namespace_on_ctx_is_seen():
    import types

    from bench.ops.robustness import check_saved_tensors

    class Hides(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.state = types.SimpleNamespace(x=x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            return 2 * ctx.state.x * g

    check = check_saved_tensors(Hides.apply, (torch.randn(4, 5),))
    assert check.status == "violated" and "ctx.state.x" in check.message, check


class RMSNormWithRstd(Function):
    """Returns (y, rstd), like fused norms do; the composite returns y only."""

    @staticmethod
    def forward(x):
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return x * rstd, rstd

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, gy, grstd):
        x, rstd = ctx.saved_tensors
        n = x.shape[-1]
        return rstd * gy - x * rstd.pow(3) * (gy * x).sum(-1, keepdim=True) / n


def test_an_extra_output_is_not_a_dtype_failure():
    from bench.ops.robustness import check_output_dtype

    def reference(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    check = check_output_dtype(RMSNormWithRstd.apply, (torch.randn(4, 8),), reference)
    assert check.status == "held" and check.detail["outputs_compared"] == 1, check
    assert "extra output" in check.message


# ---- PyTorch's own autograd_function_db, with references: the checks apply and pass ----

def _db_with_references():
    db = pytest.importorskip("torch.testing._internal.autograd_function_db",
                             reason="PyTorch's own autograd.Function test set is not in this build")
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    ind = torch.stack([torch.randperm(4) for _ in range(3)])

    def sort_ref(t, dim):
        values, idx = torch.sort(t, dim)
        return values, idx, torch.argsort(idx, dim)

    return {
        "MulGenVmap": (db.MulGenVmap, (x, y), torch.mul),
        "NumpyMul": (db.NumpyMul, (x, y), torch.mul),
        "NumpyCube": (db.NumpyCube, (x,), lambda t: (t ** 3, 3 * t ** 2)),
        "SelectGenVmap": (db.SelectGenVmap, (x, 1), lambda t, i: t[i]),
        "SortGenVmap": (db.SortGenVmap, (x, 1), sort_ref),
        "NumpyTake": (db.NumpyTake, (x, ind, ind.argsort(1), 1), lambda t, i, _, d: torch.take_along_dim(t, i, d)),
    }


@pytest.mark.parametrize("name", ["MulGenVmap", "NumpyMul", "NumpyCube", "SelectGenVmap", "SortGenVmap", "NumpyTake"])
def test_pytorchs_correct_functions_pass_with_the_checks_that_apply(name):
    fn, args, ref = _db_with_references()[name]
    report = check_autograd(fn.apply, *args, reference=ref, low_precision=())
    assert report.passed, f"{name}:\n{report}"
    assert _status(report, "output_dtype") == "held", report
    assert _status(report, "saved_memory") in ("held", "violated"), report  # measured against the reference
    if name in ("SortGenVmap", "NumpyTake"):  # recompiles per batch size: a cost finding, shown as such
        assert [f.name for f in report.findings] == ["recompiles"], report


# ---- a declared property reaches the suite through a plugin ----

PLUGIN = '''
import torch
from bench.registry import OpSpec, register_op

CALLS = [0]


class Jittery(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x * 3

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        CALLS[0] += 1
        if g.dtype == torch.float64:  # exact in fp64, so gradcheck's reentrancy test passes
            return g * 3
        return g * 3 * (1 + 2e-7 * (CALLS[0] % 2))  # an ulp apart: fp32 atomics in another order


register_op(OpSpec(name="jittery", fn=Jittery.apply, reference=lambda x: x * 3,
                   make_inputs=lambda shape, device, dtype: (torch.randn(shape, device=device, dtype=dtype),),
                   check_params=(4, 5), bench_params=(64, 64), forward_ad=False, deterministic=True))
'''


def test_a_declared_deterministic_op_with_a_nondeterministic_backward_fails_in_the_suite(tmp_path):
    (tmp_path / "jittery_plugin.py").write_text(PLUGIN)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_autograd_ops.py", f"--bench-plugin={tmp_path}/jittery_plugin.py",
         "-k", "test_op_fwd_bwd and jittery and fp32", "--bench-profile=smoke", "--bench-device=cpu",
         f"--bench-report-dir={tmp_path}/r", "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-2000:]
    import json

    rows = json.loads((tmp_path / "r" / "latest" / "results.json").read_text())["bench_rows"]
    row = next(r for r in rows if r.get("op") == "jittery")
    assert row["status"] == "mismatch" and row["reason"].startswith("determinism: violated"), row
    assert "deterministic=True (by determinism)" in row["declared"]


# ---- the whole of PyTorch's autograd_function_db: the right ones pass, the wrong ones fail ----

# Wrong by their own code (torch/testing/_internal/autograd_function_db.py): they exist to test
# autograd.Function machinery, not derivatives.
WRONG_IN_PYTORCHS_DB = {
    "NumpyCubeNotComposableAutogradFunction": "backward ignores grad_output (returns 3x^2)",
    "NumpySortAutogradFunction": "forward returns its input unsorted, backward and jvp permute as if sorted",
    "CubeGenVmapAutogradFunction": "the second output's gradient term is 6 * dinput, not 6 * grad_saved * x",
    "ScaleGradGenVmapAutogradFunction": "backward scales the gradient of a copy by a constant",
    "ZeroGradientsGenVmapAutogradFunction": "backward returns zeros",
}


def _db_entries():
    try:
        from torch.testing._internal.autograd_function_db import autograd_function_db
    except ImportError:
        return []
    return [pytest.param(info, id=info.name) for info in autograd_function_db]


@pytest.mark.parametrize("info", _db_entries())
def test_every_function_of_pytorchs_db_is_judged_right(info):
    sample = next(iter(info.sample_inputs_func(info, "cpu", torch.float64, requires_grad=True)))
    report = check_autograd(info.op, sample.input, *sample.args, low_precision=(), compile_checks=False)
    if info.name in WRONG_IN_PYTORCHS_DB:
        assert not report.passed and {"gradcheck"} <= {c.name for c in report.failures}, \
            f"{info.name} ({WRONG_IN_PYTORCHS_DB[info.name]}) passed:\n{report}"
    else:
        assert report.passed, f"{info.name}:\n{report}"
