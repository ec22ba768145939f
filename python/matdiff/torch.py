"""matdiff.torch - a compiled matdiff function as a torch.autograd.Function.

    import matdiff.torch
    loss_fn = matdiff.torch.function(open("examples/seed.expr").read())
    loss = loss_fn(X, W, b)          # or loss_fn(X=X, W=W, b=b)
    loss.backward()                  # W.grad, b.grad, ... accumulate as usual

The forward pass runs the JIT'd value (md_eval), the backward pass the JIT'd
vector-Jacobian product (md_vjp) with the incoming gradient as its seed, and
computes only the gradients autograd asks for. Tensors must be float64 and
on the CPU, where matdiff computes; anything else is a TypeError that says
what to pass instead. The result is a 0-d tensor for a scalar output, else a
(rows, cols) tensor.

The gradients are not differentiable again yet: double backward needs the
Hessian-vector products of issue #12. Until then a backward pass with
create_graph=True still gives the gradients, and differentiating them
raises a RuntimeError that says so (never a silent zero, which is what a
gradient without a graph would give torch.autograd.functional.hessian).
"""
import torch

from ._function import Function, compile, load as _load


class _MatdiffFunction(torch.autograd.Function):
    """apply(fn, *tensors): tensors in fn's declaration order."""

    @staticmethod
    def forward(ctx, fn, *tensors):
        arrays = [t.detach().numpy() for t in tensors]
        y = fn._run("eval", arrays, {})[0]
        ctx.fn = fn
        ctx.save_for_backward(*tensors)
        return torch.as_tensor(y, dtype=torch.float64)

    @staticmethod
    def backward(ctx, grad_output):
        fn = ctx.fn
        want = {i for i, need in enumerate(ctx.needs_input_grad[1:]) if need}
        if not want:
            return (None,) * (1 + len(fn.inputs))
        saved = ctx.saved_tensors
        arrays = [t.detach().numpy() for t in saved]
        seed = grad_output.detach().to("cpu", torch.float64).numpy()
        _, grads = fn._run("vjp", arrays, {}, seed=seed, want=want)
        names = [x for x in fn.inputs if x in grads]
        computed = [grads[x] for x in names]
        if torch.is_grad_enabled():                    # create_graph=True
            tensors = _NotTwice.apply(computed, grad_output, *saved)
        else:
            tensors = [torch.from_numpy(g) for g in computed]
        by_name = dict(zip(names, tensors))
        return (None,) + tuple(by_name.get(x) for x in fn.inputs)


class _NotTwice(torch.autograd.Function):
    """Gradients computed outside autograd, hung on a node whose own
    backward says why it cannot run; apply(grads, *tensors they depend on)."""

    @staticmethod
    def forward(ctx, grads, *depends_on):
        return tuple(torch.from_numpy(g) for g in grads)

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise RuntimeError("matdiff.torch cannot differentiate a gradient again yet: double "
                           "backward (torch.autograd.functional.hessian, gradgradcheck) "
                           "needs matdiff's Hessian-vector products, which do not exist yet")


class TorchFunction:
    """A matdiff function that takes and returns torch tensors; calling it
    records one node on autograd's graph. .function is the
    matdiff.Function underneath (formulas, c_source, inputs)."""

    def __init__(self, fn):
        self.function = fn

    def __repr__(self):
        return "<matdiff.torch.TorchFunction %r>" % self.function

    @property
    def inputs(self):
        return self.function.inputs

    def __call__(self, *args, **tensors):
        fn = self.function
        given = fn._collect(args, tensors)
        for x, t in zip(fn.inputs, given):
            if not isinstance(t, torch.Tensor):
                raise TypeError("input %r: expected a torch.Tensor, not %s"
                                % (str(x), type(t).__name__))
            if t.device.type != "cpu":
                raise TypeError("input %r is on %s: matdiff computes on the CPU; "
                                "pass %s.cpu()" % (str(x), t.device, x))
            if t.dtype != torch.float64:
                raise TypeError("input %r is %s: matdiff computes in float64; "
                                "pass %s.double()" % (str(x), t.dtype, x))
            if t.requires_grad and not x.wrt and torch.is_grad_enabled():
                raise TypeError("input %r requires grad, but %s is differentiated only "
                                "with respect to %s (its wrt line)"
                                % (str(x), fn.output, ", ".join(fn.wrt)))
        return _MatdiffFunction.apply(fn, *given)


def function(source, filename=None):
    """A TorchFunction from matdiff source text, or from a matdiff.Function."""
    return TorchFunction(source if isinstance(source, Function) else compile(source, filename))


def load(path):
    """A TorchFunction from the .expr file at PATH."""
    return TorchFunction(_load(path))
