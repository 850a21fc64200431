"""Detection power of the production-defect checks (bench.ops.robustness): each planted
defect is caught by its check, and the correct ops of this suite and of PyTorch's own
autograd.Function test set raise no alarm."""
import pytest
import torch

from bench.ops import check_autograd
from bench.registry import ops

X = torch.randn(6, 5)
B = torch.randn(5)


def _status(report, name):
    return report.by_name(name).status


class ContiguousOnlyBackward(torch.autograd.Function):
    """Reads grad_output's storage as if it were contiguous (pointer arithmetic)."""

    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        flat = torch.as_strided(g, g.shape, torch.empty(g.shape).stride(), g.storage_offset())
        return flat * 3


class InPlaceGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g.mul_(3)


class HiddenSaved(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x  # instead of ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        return 2 * ctx.x * g


class Hoarder(torch.autograd.Function):
    """Saves four intermediates where the composite keeps one."""

    @staticmethod
    def forward(ctx, x):
        a, b, c, d = x.exp(), x.sin(), x.cos(), x * 2
        ctx.save_for_backward(x, a, b, c, d)
        return x * x

    @staticmethod
    def backward(ctx, g):
        x = ctx.saved_tensors[0]
        return 2 * x * g


def upcasting(x):
    return (x.float() * 2)  # bf16 in, fp32 out


_CALLS = [0]


class NoisyBackward(torch.autograd.Function):
    """Results that depend on something other than the inputs and the seed, like the order in
    which atomics land in a CUDA reduction (a seeded RNG would be reproducible, and is)."""

    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        _CALLS[0] += 1
        return g * 3 * (1 + 1e-6 * _CALLS[0])


def size_specialising(x):
    return torch.stack([x[i] * 2 for i in range(x.shape[0])])  # unrolled per batch size


@pytest.mark.parametrize("op, ref, check, kwargs", [
    (ContiguousOnlyBackward.apply, lambda x: x * 3, "grad_layouts", {}),
    (InPlaceGrad.apply, lambda x: x * 3, "grad_not_modified", {}),
    (HiddenSaved.apply, lambda x: x * x, "saved_tensors", {}),
    (Hoarder.apply, lambda x: x * x, "saved_memory", {}),
    (upcasting, lambda x: x * 2, "output_dtype", {}),
    (NoisyBackward.apply, lambda x: x * 3, "determinism", {"deterministic": True}),
    (size_specialising, lambda x: x * 2, "recompiles", {}),
], ids=["grad_layouts", "grad_not_modified", "saved_tensors", "saved_memory", "output_dtype", "determinism",
        "recompiles"])
def test_planted_defect_is_caught(op, ref, check, kwargs):
    report = check_autograd(op, torch.randn(16, 16), reference=ref, low_precision=(), **kwargs)
    assert _status(report, check) == "violated", report
    assert not report.by_name(check).message.startswith("op raised during the check"), report  # caught, not crashed
    if check in ("saved_memory", "recompiles"):
        # cost, not correctness: a finding of its own; the op computes the right thing
        assert report.passed and [f.name for f in report.findings] == [check], report
        assert report.by_name(check).kind == "cost"
    else:
        assert not report.passed


def test_a_recompile_fails_an_op_that_declares_it_compiles_once():
    report = check_autograd(size_specialising, torch.randn(16, 16), reference=lambda x: x * 2, low_precision=(),
                            compile_once=True)
    assert not report.passed and [f.name for f in report.failures] == ["recompiles"], report


def test_a_seeded_random_op_is_deterministic():
    def noisy_forward(x):
        return x + 1e-3 * torch.randn_like(x)  # reproducible under the same seed

    check = check_autograd(noisy_forward, torch.randn(6, 5), low_precision=(), deterministic=True)
    assert check.by_name("determinism").status == "held"


def test_nondeterminism_is_reported_not_failed_unless_declared():
    report = check_autograd(NoisyBackward.apply, torch.randn(6, 5), low_precision=())
    check = report.by_name("determinism")
    assert check.status == "not_applicable" and "differ" in check.message


def test_saved_memory_is_a_measured_column():
    from bench.ops.cost import check_saved_memory

    detail = check_saved_memory(Hoarder.apply, (torch.randn(64, 64),), lambda x: x * x).detail
    assert detail["saved_bytes"] >= 4 * 64 * 64 * 4 and detail["reference_saved_bytes"] <= 64 * 64 * 4


@pytest.mark.parametrize("name", sorted(ops()))
def test_library_ops_pass_the_new_checks(name):
    spec = ops()[name]
    inputs = spec.make_inputs(spec.check_params, "cpu", torch.float32)
    report = check_autograd(spec.fn, *inputs, reference=spec.reference, forward_ad=spec.forward_ad,
                            low_precision=())
    new = ("grad_layouts", "grad_not_modified", "saved_tensors", "saved_memory", "output_dtype", "determinism",
           "recompiles")
    assert all(_status(report, n) != "violated" for n in new), report


def _db():
    return pytest.importorskip("torch.testing._internal.autograd_function_db",
                               reason="PyTorch's own autograd.Function test set is not in this build")


def _pytorch_functions():
    db = _db()
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    return [(db.MulGenVmap, (x, y)), (db.NumpyCube, (x,)), (db.NumpyMul, (x, y)), (db.SelectGenVmap, (x, 1))]


def test_finds_that_two_of_pytorchs_functions_recompile_for_every_batch_size():
    """A finding, not a false alarm: Dynamo recompiles PyTorch's own SortGenVmap and
    NumpyTake test Functions at every new batch size ("tensor 'args[0]' size mismatch at index
    0. expected 4, actual 5" after the automatic-dynamic recompile), so a model using such an
    op under torch.compile keeps compiling; MulGenVmap, NumpyCube, NumpyMul and SelectGenVmap
    do not (test below)."""
    from bench.ops.cost import check_recompiles

    db = _db()
    x = torch.randn(3, 4, dtype=torch.float64)
    ind = torch.stack([torch.randperm(4) for _ in range(3)])
    for fn, args in ((db.SortGenVmap, (x, 1)), (db.NumpyTake, (x, ind, ind.argsort(1), 1))):
        check = check_recompiles(fn.apply, args)
        assert check.status == "violated" and check.detail["graphs_after_each_batch_size"] == [1, 2, 3], fn


@pytest.mark.parametrize("idx", range(4))
def test_pytorch_own_functions_raise_no_new_alarm(idx):
    fn, args = _pytorch_functions()[idx]
    report = check_autograd(fn.apply, *args, low_precision=())
    new = ("grad_layouts", "grad_not_modified", "saved_tensors", "saved_memory", "output_dtype", "determinism",
           "recompiles")
    assert all(_status(report, n) != "violated" for n in new), f"{fn.__name__}:\n{report}"
