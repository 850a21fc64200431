"""Detection power of check_autograd: planted bugs are named by the right check; correct
ops, ours and PyTorch's own test Functions, pass (no false alarms)."""
import pytest
import torch
from torch.autograd import Function

from bench.ops import check_autograd
from bench.registry import ops


def _failed(report):
    return {c.name for c in report.failures}


# ---- planted bugs ----

class SeedAddBias(Function):
    """The seed chapter's op, verbatim in spirit: legacy style, zero bias gradient."""

    def forward(self, input, bias):
        self.save_for_backward(input, bias)
        return input + bias

    def backward(self, grad_output):
        input, bias = self.saved_tensors
        return grad_output, grad_output.new_zeros(bias.size())


class ZeroBiasGrad(Function):
    """Modern style, but the seed's zero bias gradient."""

    @staticmethod
    def forward(x, bias):
        return x + bias

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.bias_shape = inputs[1].shape

    @staticmethod
    def backward(ctx, grad):
        return grad, grad.new_zeros(ctx.bias_shape)


class OffByFactor(Function):
    """d/dx x^2 returned as x instead of 2x."""

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x


class WrongTwice(Function):
    """First derivative of x^3 right, second wrong: backward detaches x."""

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x.detach() ** 2


class WritesInput(Function):
    """Scales its input in place and does not say so."""

    @staticmethod
    def forward(x):
        x.mul_(2)
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


class ContiguousOnly(Function):
    """Reads its input's storage as if it were row-major: right only for contiguous inputs."""

    @staticmethod
    def forward(x):
        flat = torch.as_strided(x, x.shape, (x.shape[-1], 1))
        return flat * 2

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


X = torch.randn(3, 4, dtype=torch.float64)
B = torch.randn(4, dtype=torch.float64)


def test_seed_add_bias_legacy_style_and_zero_gradient():
    # called the seed's way (an instance) torch 2.13 raises; the checker does not
    with pytest.raises(RuntimeError):
        SeedAddBias()(X, B)
    for fn in (SeedAddBias(), SeedAddBias.apply, SeedAddBias):
        report = check_autograd(fn, X, B, reference=torch.add)
        failed = _failed(report)
        assert {"legacy_function", "gradcheck"} <= failed, report
        assert "@staticmethod" in report.by_name("legacy_function").message
        assert ".apply" in report.by_name("legacy_function").message


def test_zero_bias_gradient():
    report = check_autograd(ZeroBiasGrad.apply, X, B)
    assert "gradcheck" in _failed(report)
    assert "input 1" in report.by_name("gradcheck").message


def test_derivative_off_by_a_constant_factor():
    assert "gradcheck" in _failed(check_autograd(OffByFactor.apply, X))


def test_backward_right_once_wrong_twice():
    report = check_autograd(WrongTwice.apply, X)
    assert report.by_name("gradcheck").status == "held"
    assert "gradgradcheck" in _failed(report)


def test_op_that_writes_into_its_input():
    report = check_autograd(WritesInput.apply, X.clone())
    assert "mutation" in _failed(report)
    assert "input(s) [0]" in report.by_name("mutation").message
    # declared mutation is not a failure of that check
    assert check_autograd(WritesInput.apply, X.clone(), mutates=(0,)).by_name("mutation").status == "held"


def test_op_right_only_for_contiguous_inputs():
    report = check_autograd(ContiguousOnly.apply, X)
    assert report.by_name("gradcheck").status == "held"  # contiguous inputs look fine
    assert "layout" in _failed(report)
    assert "transposed" in report.by_name("layout").message or "strided" in report.by_name("layout").message


def test_a_defect_never_escapes_as_an_exception():
    def broken(x):
        raise ValueError("kaboom")

    report = check_autograd(broken, X)
    assert not report.passed and "kaboom" in report.by_name("forward").message


def test_checks_that_cannot_apply_are_not_failures():
    # integer and Python inputs, no differentiable tensor, no reference
    report = check_autograd(lambda idx, k: idx * k, torch.arange(6), 3)
    assert report.passed, report
    assert report.by_name("gradcheck").status == "not_applicable"
    assert report.by_name("low_precision_bf16").status == "not_applicable"


def test_low_precision_blames_only_error_beyond_the_composite():
    """fp16 rounding the native op shares is not the op's fault; an fp16 op that throws
    away precision the composite keeps is."""
    ref = lambda x: torch.nn.functional.gelu(x, approximate="tanh")  # noqa: E731
    x = torch.randn(8, 8)
    assert check_autograd(ref, x, reference=ref).by_name("low_precision_fp16").status == "held"

    def lossy(x):  # rounds its input to 3 significant bits first
        return ref((x * 8).round() / 8)

    report = check_autograd(lossy, x, reference=ref, low_precision=("fp16",))
    assert report.by_name("low_precision_fp16").status == "violated"


# ---- no false alarms ----

@pytest.mark.parametrize("name", sorted(ops()))
def test_library_ops_pass(name):
    spec = ops()[name]
    inputs = spec.make_inputs(spec.check_params, "cpu", torch.float32)
    edges = [spec.make_inputs(p, "cpu", torch.float64) for p in spec.edge_params]
    report = check_autograd(spec.fn, *inputs, reference=spec.reference, edge_inputs=edges,
                            forward_ad=spec.forward_ad)
    assert report.passed, report


def _pytorch_test_functions():
    db = pytest.importorskip("torch.testing._internal.autograd_function_db",
                             reason="PyTorch's own autograd.Function test set is not in this build")
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    ind = torch.stack([torch.randperm(4) for _ in range(3)])
    return [(db.MulGenVmap, (x, y)), (db.NumpyCube, (x,)), (db.NumpyMul, (x, y)), (db.SortGenVmap, (x, 1)),
            (db.SelectGenVmap, (x, 1)), (db.NumpyTake, (x, ind, ind.argsort(1), 1))]


@pytest.mark.parametrize("idx", range(6))
def test_pytorch_own_correct_functions_pass(idx):
    fn, args = _pytorch_test_functions()[idx]
    # SortGenVmap's and NumpyTake's recompiles are a finding of their own (test_op_robustness.py)
    report = check_autograd(fn.apply, *args, compile_checks=fn.__name__ not in ("SortGenVmap", "NumpyTake"))
    assert report.passed, f"{fn.__name__}:\n{report}"


def test_finds_the_wrong_second_output_gradient_in_pytorchs_cube_gen_vmap():
    """PyTorch's own CubeGenVmap test Function returns grad_output * dinput + 6 * dinput
    from backward; the right term for its second output (3x^2) is 6 * grad_saved * x.
    Its test set never differentiates that output; gradcheck on both outputs does."""
    db = pytest.importorskip("torch.testing._internal.autograd_function_db",
                             reason="PyTorch's own autograd.Function test set is not in this build")
    report = check_autograd(db.CubeGenVmap.apply, torch.randn(3, 4, dtype=torch.float64))
    assert "gradcheck" in _failed(report)
