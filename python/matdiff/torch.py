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

For a scalar output the gradients are differentiable again (double
backward): a backward pass with create_graph=True hangs them on a node whose
backward is matdiff's Hessian-vector product (md_hvp) along the incoming
gradients, and its JVP (md_jvp) for the seed, so that
torch.autograd.functional.hessian and gradgradcheck work through it. A third
derivative, or the second of a matrix output, raises a RuntimeError that
says so (never a silent zero).
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
            tensors = _Twice.apply(fn, tuple(names), computed, grad_output, *saved)
        else:
            tensors = [torch.from_numpy(g) for g in computed]
        by_name = dict(zip(names, tensors))
        return (None,) + tuple(by_name.get(x) for x in fn.inputs)


class _Twice(torch.autograd.Function):
    """Gradients computed outside autograd, hung on a node that
    differentiates them again: apply(fn, names, grads, seed, *inputs). For a
    scalar output the gradient of NAME is seed*df/dNAME, so along incoming
    gradients u its derivative is seed*H*u for the inputs (md_hvp with
    directions u) and <df/dx, u> for the seed (md_jvp)."""

    @staticmethod
    def forward(ctx, fn, names, grads, seed, *inputs):
        ctx.fn, ctx.names = fn, names
        ctx.save_for_backward(seed, *inputs)
        return tuple(torch.from_numpy(g) for g in grads)

    @staticmethod
    def backward(ctx, *us):
        fn = ctx.fn
        seed, *inputs = ctx.saved_tensors
        if fn.output_shape != (1, 1):
            raise RuntimeError("matdiff.torch differentiates a gradient again only for a scalar "
                               "output (md_hvp); %s is %s" % (fn.output, fn.output_shape))
        arrays = [t.detach().numpy() for t in inputs]
        dirs = {x: u.detach().numpy() for x, u in zip(ctx.names, us) if u is not None}
        s = float(seed.detach())
        hv = fn.hvp(dirs, *arrays) if dirs else {}
        jv = fn.jvp(dirs, *arrays) if dirs else 0.0
        d_inputs = tuple(torch.as_tensor(s * hv[x], dtype=torch.float64).reshape(t.shape) if x in hv else None
                         for x, t in zip(fn.inputs, inputs))
        d_seed = torch.as_tensor(jv, dtype=torch.float64).reshape(seed.shape)
        if torch.is_grad_enabled():                    # create_graph=True, a third time
            kept = [t for t in (d_seed,) + d_inputs if t is not None]
            refused = iter(_NoThird.apply(len(kept), *kept, seed, *inputs))
            d_seed = next(refused)
            d_inputs = tuple(None if t is None else next(refused) for t in d_inputs)
        return (None, None, None, d_seed) + d_inputs


class _NoThird(torch.autograd.Function):
    """Second derivatives hung on a node whose own backward says why it
    cannot run: apply(k, *the k tensors, *what they depend on)."""

    @staticmethod
    def forward(ctx, k, *tensors):
        return tuple(t.clone() for t in tensors[:k])

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise RuntimeError("matdiff.torch has no third derivatives: the Hessian-vector "
                           "product it gives for double backward is not differentiable")


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
