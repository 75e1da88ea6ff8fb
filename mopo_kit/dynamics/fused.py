"""Hand-fused training step and chunked prediction for :class:`EnsembleNet`.

Why: at MOPO's sizes (7 members × 256 rows × 200 units) a training step is ~1.4 GFLOP of small
GEMMs, and with autograd a third of the step went to allocation, the weight-decay term, Adam's
per-tensor bookkeeping and autograd itself. This module computes the same loss and gradients by
hand — verified against autograd in tests/test_dynamics.py — with

* every intermediate in preallocated buffers (no allocation per step);
* weight decay folded into the weight-gradient GEMM (``baddbmm(W, hᵀ, g, beta=wd)``), which is
  exactly the gradient of Σ wd·½‖W‖²;
* PyTorch's fused Adam.

With ``compute_dtype=torch.bfloat16`` (``precision: bf16`` of the fit) the hidden layers' GEMMs,
forward and backward, run in bfloat16 on copies of the weights refreshed once per step; the head
(mean and log-variance), the loss, every gradient handed to Adam, the weights and Adam's state stay
float32 (mixed precision as in Micikevicius et al. 2018, without loss scaling: bfloat16 has
float32's exponent range).

Prediction runs member by member over row chunks so activations stay in cache (a 50,000-row
forward through all members otherwise streams ~280 MB of temporaries).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mopo_kit.dynamics.ensemble_net import EnsembleNet, soft_clamp

_silu_out = torch.ops.aten.silu.out
_silu_backward = torch.ops.aten.silu_backward.grad_input


class _Buffers:
    """Per-batch-size scratch tensors for one training step (hidden activations in ``hidden_dtype``)."""

    def __init__(self, net: EnsembleNet, batch: int, hidden_dtype: torch.dtype) -> None:
        e = net.members
        widths = [w.shape[2] for w in net.weights]
        kw = {"device": net.weights[0].device, "dtype": net.weights[0].dtype}  # where the net lives
        low = {"device": kw["device"], "dtype": hidden_dtype}
        self.pre = [torch.empty(e, batch, w, **low) for w in widths[:-1]]
        self.h = [torch.empty(e, batch, w, **low) for w in widths[:-1]]
        self.grad_h = [torch.empty(e, batch, w, **low) for w in widths[:-1]]
        self.grad_pre = [torch.empty(e, batch, w, **low) for w in widths[:-1]]
        self.out = torch.empty(e, batch, widths[-1], **kw)
        self.grad_out = torch.empty(e, batch, widths[-1], **kw)
        mixed = hidden_dtype != kw["dtype"]
        # mixed precision only: the input and the head's input and output gradient cast across the boundary
        self.x = torch.empty(e, batch, net.in_dim, **low) if mixed else None
        self.head_in = torch.empty(e, batch, widths[-2], **kw) if mixed else None
        self.head_grad = torch.empty(e, batch, widths[-2], **kw) if mixed else None


class FusedTrainer:
    """One optimizer step of the MOPO ensemble loss, with hand-written backward."""

    def __init__(
        self,
        net: EnsembleNet,
        weight_decays: tuple[float, ...],
        lr: float,
        logvar_loss_coef: float,
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.net = net
        self.weight_decays = weight_decays
        self.coef = logvar_loss_coef
        self.compute_dtype = compute_dtype
        self.params = [*net.weights, *net.biases, net.max_logvar, net.min_logvar]
        for p in self.params:
            p.grad = torch.zeros_like(p)
        try:
            self.optimizer = torch.optim.Adam(self.params, lr=lr, fused=True)
        except (RuntimeError, TypeError):  # a torch build (or device) without fused Adam
            self.optimizer = torch.optim.Adam(self.params, lr=lr)
        self._buffers: dict[int, _Buffers] = {}
        self.mixed = compute_dtype != net.weights[0].dtype
        last = len(net.weights) - 1
        # low-precision copies of the hidden layers (refreshed every step) and their weight gradients
        self._low_w = [torch.empty_like(w, dtype=compute_dtype) for w in net.weights[:last]] if self.mixed else []
        self._low_b = [torch.empty_like(b, dtype=compute_dtype) for b in net.biases[:last]] if self.mixed else []
        self._low_wgrad = [torch.empty_like(w, dtype=compute_dtype) for w in net.weights[:last]] if self.mixed else []

    def _buf(self, batch: int) -> _Buffers:
        if batch not in self._buffers:
            self._buffers[batch] = _Buffers(self.net, batch, self.compute_dtype)
        return self._buffers[batch]

    @torch.no_grad()
    def loss_and_grads(self, x: Tensor, y: Tensor) -> Tensor:
        """Fill ``p.grad`` for every parameter and return the loss without weight decay (0-dim).

        Loss = Σ_members [mean((μ − y)²·e^(−logvar)) + mean(logvar)]
               + coef·(Σ max_logvar − Σ min_logvar) + Σ_l wd_l·½‖W_l‖²
        """
        net, buf = self.net, self._buf(x.shape[1])
        weights, biases = net.weights, net.biases
        last = len(weights) - 1
        if self.mixed:  # this step's weights, once, in the compute dtype
            for low, full in zip((*self._low_w, *self._low_b), (*weights[:last], *biases[:last])):
                low.copy_(full)
        hidden_w = self._low_w if self.mixed else weights[:last]
        hidden_b = self._low_b if self.mixed else biases[:last]
        # forward: keep pre-activations for the SiLU backward
        h = buf.x.copy_(x) if self.mixed else x
        for i in range(last):
            torch.baddbmm(hidden_b[i], h, hidden_w[i], out=buf.pre[i])
            _silu_out(buf.pre[i], out=buf.h[i])
            h = buf.h[i]
        if self.mixed:
            h = buf.head_in.copy_(h)
        torch.baddbmm(biases[last], h, weights[last], out=buf.out)
        d = net.out_dim
        mean, raw = buf.out[..., :d], buf.out[..., d:]
        max_lv, min_lv = net.max_logvar, net.min_logvar
        a = max_lv - raw
        sig_a = torch.sigmoid(a)
        lv1 = max_lv - F.softplus(a)
        c = lv1 - min_lv
        sig_c = torch.sigmoid(c)
        logvar = min_lv + F.softplus(c)
        inv_var = torch.exp(-logvar)
        diff = mean - y
        sq_scaled = diff.square().mul_(inv_var)
        n = y.shape[1] * d
        loss = (sq_scaled.sum() + logvar.sum()) / n + self.coef * (max_lv.sum() - min_lv.sum())
        # backward of the head: d/dμ, then through the two soft clamps to the raw log-variance
        grad_mean = buf.grad_out[..., :d]
        torch.mul(diff, inv_var, out=grad_mean).mul_(2.0 / n)
        grad_logvar = (1.0 - sq_scaled).div_(n)
        grad_raw = buf.grad_out[..., d:]
        torch.mul(grad_logvar, sig_c, out=grad_raw).mul_(sig_a)
        max_lv.grad.copy_((grad_logvar * sig_c * (1.0 - sig_a)).sum(dim=(0, 1))).add_(self.coef)
        min_lv.grad.copy_((grad_logvar * (1.0 - sig_c)).sum(dim=(0, 1))).sub_(self.coef)
        # backward through the layers; weight decay folded into the weight-gradient GEMM
        grad = buf.grad_out
        if self.mixed:  # the head in float32, its input gradient cast down for the hidden layers
            torch.baddbmm(weights[last], buf.head_in.transpose(1, 2), grad, beta=self.weight_decays[last], out=weights[last].grad)
            torch.sum(grad, dim=1, keepdim=True, out=biases[last].grad)
            torch.bmm(grad, weights[last].transpose(1, 2), out=buf.head_grad)
            buf.grad_h[last - 1].copy_(buf.head_grad)
            grad = _silu_backward(buf.grad_h[last - 1], buf.pre[last - 1], grad_input=buf.grad_pre[last - 1])
            for i in range(last - 1, -1, -1):
                inp = buf.x if i == 0 else buf.h[i - 1]
                torch.bmm(inp.transpose(1, 2), grad, out=self._low_wgrad[i])
                weights[i].grad.copy_(self._low_wgrad[i]).add_(weights[i], alpha=self.weight_decays[i])
                torch.sum(grad, dim=1, keepdim=True, dtype=biases[i].dtype, out=biases[i].grad)
                if i > 0:
                    torch.bmm(grad, hidden_w[i].transpose(1, 2), out=buf.grad_h[i - 1])
                    grad = _silu_backward(buf.grad_h[i - 1], buf.pre[i - 1], grad_input=buf.grad_pre[i - 1])
            return loss
        for i in range(last, -1, -1):
            inp = x if i == 0 else buf.h[i - 1]
            torch.baddbmm(weights[i], inp.transpose(1, 2), grad, beta=self.weight_decays[i], out=weights[i].grad)
            torch.sum(grad, dim=1, keepdim=True, out=biases[i].grad)
            if i > 0:
                torch.bmm(grad, weights[i].transpose(1, 2), out=buf.grad_h[i - 1])
                grad = _silu_backward(buf.grad_h[i - 1], buf.pre[i - 1], grad_input=buf.grad_pre[i - 1])
        return loss

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One Adam step on a (members, batch, ·) minibatch; returns the loss without weight decay."""
        loss = self.loss_and_grads(x, y)
        self.optimizer.step()
        return loss

    def decay_loss(self) -> Tensor:
        """Σ_l wd_l·½‖W_l‖² at the current weights (for reporting the full loss)."""
        with torch.no_grad():
            return sum(wd * 0.5 * w.square().sum() for wd, w in zip(self.weight_decays, self.net.weights))


#: Rows are padded to a multiple of this in :func:`predict_rows_chunked`: PyTorch's elementwise
#: kernels (SiLU, softplus, exp) run two vectors per iteration (16 floats with AVX2, 32 with
#: AVX-512) and finish a buffer's last few elements in scalar code, whose last bit can differ from
#: the vector code's; a buffer of whole iterations computes every row alike, wherever it sits.
ALIGN_ROWS = 32


class _ChunkNet:
    """The ensemble's layers laid out for member-by-member forwards over row chunks, with the
    scratch buffers those forwards reuse (nothing of size rows·members·hidden is materialized)."""

    def __init__(self, net: EnsembleNet, x: Tensor, chunk: int, hidden_weights: tuple[list[Tensor], list[Tensor]] | None) -> None:
        kw = {"device": x.device, "dtype": x.dtype}  # x is on the net's device (GaussianEnsemble.predict)
        self.last = len(net.weights) - 1
        self.weights = [w.detach() for w in net.weights]
        self.biases = [b.detach()[:, 0] for b in net.biases]
        hidden_kw = kw
        self.mixed = hidden_weights is not None
        if self.mixed:
            self.weights[: self.last], self.biases[: self.last] = hidden_weights
            hidden_kw = {"device": x.device, "dtype": self.weights[min(1, self.last - 1)].dtype}
        self.min_lv, self.max_lv = net.min_logvar.detach(), net.max_logvar.detach()
        self.d = net.out_dim
        hidden = self.weights[0].shape[2]
        self.ping, self.pong = torch.empty(chunk, hidden, **hidden_kw), torch.empty(chunk, hidden, **hidden_kw)
        self.first = torch.empty(chunk, hidden, **kw) if self.mixed else None  # the float32 input layer's output
        self.head_in = torch.empty(chunk, hidden, **kw) if self.mixed else None
        self.out = torch.empty(chunk, 2 * self.d, **kw)

    def member(self, k: int, xc: Tensor) -> Tensor:
        """Member ``k``'s raw head output (rows, 2·D) — mean, then unclamped log-variance — for ``xc``."""
        rows = xc.shape[0]
        h = xc
        for i in range(self.last):
            target = (self.ping if i % 2 == 0 else self.pong)[:rows]
            if self.mixed and i == 0:  # float32 GEMM, then one cast of its activations
                h = target.copy_(F.silu(torch.addmm(self.biases[0][k], h, self.weights[0][k], out=self.first[:rows]), inplace=True))
                continue
            torch.addmm(self.biases[i][k], h, self.weights[i][k], out=target)
            h = F.silu(target, inplace=True)
        if self.head_in is not None:
            h = self.head_in[:rows].copy_(h)
        return torch.addmm(self.biases[self.last][k], h, self.weights[self.last][k], out=self.out[:rows])

    def log_variance(self, head: Tensor) -> Tensor:
        return soft_clamp(head[:, self.d :], self.min_lv, self.max_lv)


@torch.inference_mode()
def predict_chunked(net: EnsembleNet, x: Tensor, chunk: int = 4096, hidden_weights: tuple[list[Tensor], list[Tensor]] | None = None) -> tuple[Tensor, Tensor]:
    """Mean and variance (E, N, D) for inputs (N, in) shared by all members.

    Member by member over row chunks, every activation written into reused buffers and the
    log-variance clamp + exp applied while the chunk is in cache, so nothing of size N·E·200 is
    ever materialized.

    ``hidden_weights``: (weights, biases) of the hidden layers from :func:`hidden_layers_in`, the
    input layer float32 and the others in another dtype (bfloat16): those GEMMs then run in that
    dtype, the input layer — on the unrounded standardized (s, a), a short GEMM (K = obs + act)
    — and the head — mean and log-variance, whose small differences matter — in float32.
    """
    e, n, d = net.members, x.shape[0], net.out_dim
    mean = torch.empty(e, n, d, device=x.device, dtype=x.dtype)
    var = torch.empty(e, n, d, device=x.device, dtype=x.dtype)
    layers = _ChunkNet(net, x, chunk, hidden_weights)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        xc = x[lo:hi]
        for k in range(e):
            o = layers.member(k, xc)
            mean[k, lo:hi] = o[:, :d]
            torch.exp(layers.log_variance(o), out=var[k, lo:hi])
    return mean, var


@torch.inference_mode()
def predict_rows_chunked(
    net: EnsembleNet, x: Tensor, members: Tensor, chunk: int = 4096, hidden_weights: tuple[list[Tensor], list[Tensor]] | None = None
) -> tuple[Tensor, Tensor]:
    """Mean and variance (N, D): row i from member ``members[i]`` only.

    Why: sampling s' ~ T̂ uses one member per row, so a caller that needs no other member's output
    (a rollout with no penalty: MBPO) pays for 1 member's forward instead of E. Rows are grouped by
    member, gathered in chunks padded to :data:`ALIGN_ROWS` and run through the same layers as
    :func:`predict_chunked`. The batch's last ``(N mod chunk) mod ALIGN_ROWS`` rows, where
    :func:`predict_chunked` ends its elementwise kernels in scalar code, go through each of their
    members as that unpadded block, as they do there; so at one thread (and ``chunk`` a multiple of
    :data:`ALIGN_ROWS`) every row equals :func:`predict_chunked`'s for its member to the bit
    (rollout-sized batches and a whole MBPO run: benchmarks/bench_predict_rows.py; the tests hold
    the two to 1e-6, which more threads or another CPU's kernels keep).
    """
    n, d = x.shape[0], net.out_dim
    mean = torch.empty(n, d, device=x.device, dtype=x.dtype)
    var = torch.empty(n, d, device=x.device, dtype=x.dtype)
    chunk = -(-chunk // ALIGN_ROWS) * ALIGN_ROWS
    layers = _ChunkNet(net, x, chunk, hidden_weights)
    padded = torch.zeros(chunk, x.shape[1], device=x.device, dtype=x.dtype)
    last_chunk = n % chunk or min(n, chunk)
    tail = last_chunk % ALIGN_ROWS
    body = n - tail
    # the tail runs with the ALIGN_ROWS rows before it: a GEMM of a few rows takes another kernel,
    # which sums in another order (seen at 3 rows), and the block keeps its vector boundaries
    block = n - min(last_chunk, ALIGN_ROWS + tail)
    for k in torch.unique(members[body:]).tolist():
        o = layers.member(k, x[block:])
        mine = (members[body:] == k).nonzero().flatten() + body
        mean[mine] = o[mine - block, :d]
        var[mine] = torch.exp(layers.log_variance(o))[mine - block]
    order = torch.argsort(members[:body], stable=True)  # each member's rows together, in their batch order
    counts = torch.bincount(members[:body], minlength=net.members).tolist()
    start = 0
    for k, count in enumerate(counts):
        for lo in range(start, start + count, chunk):
            index = order[lo : min(lo + chunk, start + count)]
            rows = index.shape[0]
            aligned = -(-rows // ALIGN_ROWS) * ALIGN_ROWS
            xc = padded[:aligned]
            torch.index_select(x, 0, index, out=xc[:rows])
            o = layers.member(k, xc)
            mean[index] = o[:rows, :d]
            var[index] = torch.exp(layers.log_variance(o))[:rows]
        start += count
    return mean, var


@torch.no_grad()
def hidden_layers_in(net: EnsembleNet, dtype: torch.dtype) -> tuple[list[Tensor], list[Tensor]]:
    """The hidden layers' weights and biases (bias as (E, out)) for :func:`predict_chunked`: the
    input layer's as they are, the others cast to ``dtype``.

    The input layer stays float32 because rounding the standardized (s, a) and its weights to
    bfloat16 moved ``max_aleatoric`` by up to 6.6 % (p99) against float32 on a halfcheetah-random
    model, and keeping it float32 halves that (docs/performance.md); its GEMM is short
    (K = obs + act ≈ 23 against 200), so it costs little of bfloat16's gain.
    """
    last = len(net.weights) - 1
    cast = [w.detach() if i == 0 else w.detach().to(dtype) for i, w in enumerate(net.weights[:last])]
    biases = [b.detach()[:, 0] if i == 0 else b.detach()[:, 0].to(dtype) for i, b in enumerate(net.biases[:last])]
    return cast, biases


@torch.inference_mode()
def predict_batched(net: EnsembleNet, x: Tensor, chunk: int = 131_072) -> tuple[Tensor, Tensor]:
    """Mean and variance (E, N, D) as :func:`predict_chunked`, all members in one batched pass.

    For GPUs: there the member-by-member loop over 4,096-row chunks is bound by kernel launches
    (50,000 states: 13 chunks × 7 members × ~8 kernels), while one pass is ~10 kernels. Rows go in
    chunks of ``chunk`` only to bound the (E, rows, hidden) activations (131,072 rows × 7 × 200
    floats = 0.7 GiB).
    """
    means, variances = [], []
    for lo in range(0, x.shape[0], chunk):
        mean, logvar = net(x[lo : lo + chunk])
        means.append(mean.contiguous())
        variances.append(logvar.exp())
    if len(means) == 1:
        return means[0], variances[0]
    return torch.cat(means, dim=1), torch.cat(variances, dim=1)
