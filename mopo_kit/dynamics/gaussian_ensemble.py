"""MOPO's probabilistic dynamics ensemble: fit with bootstrap + early stopping, predict, save/load.

Faithful to ``mopo/models/{bnn,constructor}.py`` (reference sheet §1): 7 members, 5 elites chosen
on a holdout of min(20 %, 1,000) transitions; inputs [s, a] standardized on the training split;
targets [Δs, r] in raw units; loss per member mean((μ − y)²·e^(−logvar)) + mean(logvar), summed
over members, + Σ_l wd_l·½‖W_l‖² + 0.01·(Σ max_logvar − Σ min_logvar); Adam 1e-3, batch 256 per
member; each member trains on its own bootstrap resample, reshuffled every epoch; a member's
snapshot is kept when its holdout MSE improves by more than 1 %, and training stops when no
member has improved for more than 5 epochs. At the end every member is restored to its best
snapshot and the 5 with the lowest holdout MSE become the elites.

Column order: mopo_kit keeps the reward *last* ([Δs, r], as OfflineRL-Kit); the original puts it
first. The math is the same.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.device import check_device_spec, resolve_device
from mopo_kit.dynamics.base import EpochCallback, EpochStats, FitReport
from mopo_kit.dynamics.ensemble_net import EnsembleNet
from mopo_kit.dynamics.fit_checkpoint import fit_identity, load_fit_state, save_fit_state
from mopo_kit.dynamics.fused import FusedTrainer, hidden_layers_in, predict_batched, predict_chunked, predict_rows_chunked
from mopo_kit.dynamics.scaler import StandardScaler
from mopo_kit.errors import MopoKitError
from mopo_kit.fileio import atomic_write_bytes
from mopo_kit.hookspecs import hookimpl
from mopo_kit.precision import check_precision, compute_dtype, resolve_precision
from mopo_kit.stop import StopRequested, signal_name, stop_requested
from mopo_kit.types import EnsemblePrediction
from mopo_kit.validation import (
    FRACTION,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Range,
    check_fields,
    check_known_params,
    require,
)

CONFIG_FILE = "dynamics.json"
WEIGHTS_FILE = "dynamics.pt"
#: Bumped when the stored layout changes; a newer file is refused by name, not misread.
FORMAT_VERSION = 1
#: Minibatches between two looks at the graceful-stop flag during a checkpointed fit.
STOP_CHECK_BATCHES = 16


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line (torch's load errors span several)."""
    return " ".join(str(exc).split())[:limit]


class TrainingDivergedError(MopoKitError):
    """The training loss became NaN or inf; the model holds its last good snapshots."""

    def __init__(self, message: str, report: FitReport) -> None:
        super().__init__(message)
        self.report = report


#: Limits of a fit, not what it is a fit of: a checkpoint may be continued under new ones.
_FIT_LIMITS = ("max_epochs", "max_seconds", "predict_chunk")

#: What each numeric param of :class:`EnsembleConfig` may hold (checked on construction).
ENSEMBLE_RANGES: dict[str, Range] = {
    "members": POSITIVE_INT,
    "elites": POSITIVE_INT,
    "hidden": POSITIVE_INT,
    "layers": POSITIVE_INT,
    "lr": POSITIVE,
    "batch_size": POSITIVE_INT,
    "holdout_max": NON_NEGATIVE_INT,
    "holdout_ratio": FRACTION,
    "improvement": FRACTION,
    "patience": NON_NEGATIVE_INT,
    "logvar_loss_coef": NON_NEGATIVE,
    "max_epochs": POSITIVE_INT,
    "max_seconds": POSITIVE,
    "predict_chunk": POSITIVE_INT,
    "seed": SEED,
}


@dataclass
class EnsembleConfig:
    """Hyper-parameters of the Gaussian ensemble; the defaults are MOPO's."""

    members: int = 7
    elites: int = 5
    hidden: int = 200
    layers: int = 4
    weight_decays: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    lr: float = 1e-3
    batch_size: int = 256
    holdout_max: int = 1000
    holdout_ratio: float = 0.2
    improvement: float = 0.01
    patience: int = 5
    logvar_loss_coef: float = 0.01
    max_epochs: int | None = None
    max_seconds: float | None = None
    predict_chunk: int = 4096
    seed: int = 0
    #: ``fp32``, ``bf16`` or ``auto`` (:mod:`mopo_kit.precision`) of the fit's hidden-layer GEMMs; the
    #: loss, gradients, weights and Adam stay float32 (``FusedTrainer``). Not MOPO's: a speed option.
    fit_precision: str = "fp32"

    def __post_init__(self) -> None:
        where = "gaussian_ensemble param"
        check_fields(self, ENSEMBLE_RANGES, where=where, optional=("max_epochs", "max_seconds"))
        check_precision(self.fit_precision, where=f"{where} 'fit_precision'")
        if isinstance(self.weight_decays, (str, bytes)) or not hasattr(self.weight_decays, "__iter__"):
            raise MopoKitError(f"{where} 'weight_decays' must be a list of layers + 1 numbers >= 0, got {self.weight_decays!r}")
        self.weight_decays = tuple(require(w, "weight_decays", NON_NEGATIVE, where=where) for w in self.weight_decays)
        if len(self.weight_decays) != self.layers + 1:
            raise MopoKitError(
                f"gaussian_ensemble: weight_decays has {len(self.weight_decays)} entries, expected layers + 1 = {self.layers + 1}"
            )
        if not 0 < self.elites <= self.members:
            raise MopoKitError(f"gaussian_ensemble: elites={self.elites} must be in 1..members={self.members}")


@dataclass
class _Split:
    x_train: Tensor  # standardized inputs
    y_train: Tensor
    x_hold: Tensor
    y_hold: Tensor


class GaussianEnsemble:
    """A batched ensemble of Gaussian MLPs over [Δs, r] (see module docstring)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: EnsembleConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        **params: Any,
    ) -> None:
        self.config = config or self.check_params(params)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.out_dim = self.obs_dim + 1
        torch.manual_seed(self.config.seed)
        # built on the CPU from the CPU RNG, then moved: the same seed gives the same initial
        # weights on every device (a CUDA run starts where the CPU run starts)
        self.net = EnsembleNet(self.config.members, self.obs_dim + self.act_dim, self.out_dim, self.config.hidden, self.config.layers)
        self.scaler = StandardScaler(self.obs_dim + self.act_dim)
        self.elites = torch.arange(self.config.elites)
        self.holdout_mse: list[float] = []
        self.fitted = False
        self.precision = "fp32"  # of predict's hidden layers (set_precision)
        self._bf16: tuple[tuple[int, ...], tuple[list[torch.Tensor], list[torch.Tensor]]] | None = None
        self.device = torch.device("cpu")
        self.to(device)

    @staticmethod
    def check_params(params: dict[str, Any]) -> EnsembleConfig:
        """The config for ``params``, or one line naming the bad key (called by MOPO before any work).

        ``device`` is not a hyper-parameter (it is not stored with the model) but may be given.
        """
        params = dict(params)
        if "device" in params:
            check_device_spec(params.pop("device"), where="gaussian_ensemble param")
        check_known_params(EnsembleConfig, params, "gaussian_ensemble")
        return EnsembleConfig(**params)

    def set_precision(self, precision: str) -> None:
        """``fp32`` or ``bf16`` for :meth:`predict` (``mopo_kit.precision``); the fit's is ``fit_precision``."""
        self.precision = precision
        self._bf16 = None

    def _hidden_weights(self) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
        """bfloat16 copies of the hidden layers, cast again only after the weights change (a fit)."""
        if getattr(self, "precision", "fp32") != "bf16":
            return None
        versions = tuple(p._version for p in (*self.net.weights, *self.net.biases))
        cached = getattr(self, "_bf16", None)
        if cached is None or cached[0] != versions:
            self._bf16 = (versions, hidden_layers_in(self.net, torch.bfloat16))
        return self._bf16[1]

    def to(self, device: str | torch.device) -> "GaussianEnsemble":
        """Move the weights, scaler and elites to ``device`` ("auto", "cpu", "cuda", "cuda:N")."""
        self.device = resolve_device(device, flag="gaussian_ensemble device") if not isinstance(device, torch.device) else device
        self.net.to(self.device)
        self.scaler.to(self.device)
        self.elites = self.elites.to(self.device)
        return self

    # ------------------------------------------------------------------------------ training
    def _split(self, data: TransitionDataset, gen: torch.Generator) -> _Split:
        # the whole training set moves to the device once; every minibatch is gathered there
        x = torch.from_numpy(np.concatenate([data.observations, data.actions], axis=1)).to(self.device)
        y = torch.from_numpy(
            np.concatenate([data.next_observations - data.observations, data.rewards[:, None]], axis=1)
        ).to(self.device)
        n = x.shape[0]
        n_hold = min(int(n * self.config.holdout_ratio), self.config.holdout_max)
        perm = torch.randperm(n, generator=gen)
        hold, train = perm[:n_hold].to(self.device), perm[n_hold:].to(self.device)
        if train.numel() == 0:
            raise MopoKitError(f"{data.source}: {n} transitions are too few to train a dynamics model")
        self.scaler.fit(x[train])
        xs = self.scaler(x)
        return _Split(xs[train].contiguous(), y[train].contiguous(), xs[hold].contiguous(), y[hold].contiguous())

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """MOPO's training loss by autograd (the reference the fused trainer is tested against).

        x: (E, B, in) standardized inputs, y: (E, B, D) raw targets [Δs, r].
        """
        mean, logvar = self.net(x)
        inv_var = torch.exp(-logvar)
        per_member = ((mean - y).square() * inv_var).mean(dim=(1, 2)) + logvar.mean(dim=(1, 2))
        bounds = self.config.logvar_loss_coef * (self.net.max_logvar.sum() - self.net.min_logvar.sum())
        decay = sum(wd * 0.5 * w.square().sum() for wd, w in zip(self.config.weight_decays, self.net.weights))
        return per_member.sum() + bounds + decay

    @torch.no_grad()
    def _holdout_mse(self, split: _Split) -> Tensor:
        if split.x_hold.shape[0] == 0:
            return torch.zeros(self.config.members, device=self.device)
        mean, _ = self.net(split.x_hold)
        return (mean - split.y_hold).square().mean(dim=(1, 2))

    def fit(
        self, data: TransitionDataset, *, callback: EpochCallback | None = None, checkpoint: str | Path | None = None
    ) -> FitReport:
        """Train on ``data`` until early stopping (or ``max_epochs`` / ``max_seconds``).

        With ``checkpoint`` (a file path) the whole training state is written there after every
        epoch and a fit killed midway continues from it, ending exactly where an uninterrupted
        fit ends (``fit_checkpoint``); the caller removes the file once the model is saved.
        A larger ``max_epochs`` or ``max_seconds`` than the checkpoint's fit had may continue it.

        A graceful stop (:mod:`mopo_kit.stop`) during a checkpointed fit ends it within
        :data:`STOP_CHECK_BATCHES` minibatches with :class:`StopRequested`, dropping the epoch in
        progress: the checkpoint holds the last whole epoch and its minibatch RNG, so the resumed
        fit redoes that epoch exactly as it would have run. An epoch on a large dataset with one
        thread takes minutes, longer than a scheduler's grace period before SIGKILL.
        """
        cfg = self.config
        if data.obs_dim != self.obs_dim or data.act_dim != self.act_dim:
            raise MopoKitError(
                f"{data.source}: obs/act dims ({data.obs_dim}, {data.act_dim}) do not match the model ({self.obs_dim}, {self.act_dim})"
            )
        # the RNG stays on the CPU (bootstrap and shuffles are index draws, moved once per epoch):
        # the same seed draws the same minibatches on every device
        gen = torch.Generator().manual_seed(cfg.seed)
        data = data.with_known_next()  # a terminal row of a v0 file has no s'
        split = self._split(data, gen)
        n_train = split.x_train.shape[0]
        bootstrap = torch.randint(n_train, (cfg.members, n_train), generator=gen)
        precision = resolve_precision(cfg.fit_precision, self.device)
        trainer = FusedTrainer(self.net, cfg.weight_decays, cfg.lr, cfg.logvar_loss_coef, compute_dtype=compute_dtype(precision))
        x_batch = torch.empty(cfg.members * cfg.batch_size, split.x_train.shape[1], device=self.device)
        y_batch = torch.empty(cfg.members * cfg.batch_size, split.y_train.shape[1], device=self.device)

        best = self._holdout_mse(split).tolist()
        snapshots = [self._member_state(k) for k in range(cfg.members)]
        history: list[EpochStats] = []
        since_update, epoch, elapsed, stop_reason = 0, 0, 0.0, "early stopping"
        settings = {k: v for k, v in asdict(cfg).items() if k not in (*_FIT_LIMITS, "fit_precision")}
        if precision != "fp32":  # the resolved precision (so float32 checkpoints from before the option still match)
            settings["fit_precision"] = precision
        identity = fit_identity(data, settings) if checkpoint else {}
        saved = load_fit_state(checkpoint, identity, self.device) if checkpoint else None
        if saved is not None:
            self.net.load_state_dict(saved["net"])
            trainer.optimizer.load_state_dict(saved["optimizer"])
            gen.set_state(saved["generator"].cpu())  # the minibatch RNG lives on the CPU on every device
            best, snapshots, since_update, epoch = saved["best"], saved["snapshots"], saved["since_update"], saved["epoch"]
            history, elapsed = [EpochStats(**row) for row in saved["history"]], saved["seconds"]
        batches = math.ceil(n_train / cfg.batch_size)
        start = time.perf_counter() - elapsed
        while True:
            if since_update > cfg.patience:
                break
            if cfg.max_epochs is not None and epoch >= cfg.max_epochs:
                stop_reason = f"max_epochs={cfg.max_epochs}"
                break
            if cfg.max_seconds is not None and time.perf_counter() - start >= cfg.max_seconds:
                stop_reason = f"max_seconds={cfg.max_seconds}"
                break
            t0 = time.perf_counter()
            order = torch.argsort(torch.rand(cfg.members, n_train, generator=gen), dim=1)
            shuffled = torch.gather(bootstrap, 1, order).to(self.device)
            total = torch.zeros((), device=self.device)
            for b in range(batches):
                if checkpoint and b % STOP_CHECK_BATCHES == STOP_CHECK_BATCHES - 1 and (signum := stop_requested()) is not None:
                    kept = f"epoch {epoch}'s fit checkpoint stands" if epoch else "no epoch was finished"
                    raise StopRequested(f"stopped by {signal_name(signum)} in dynamics fit epoch {epoch + 1} after {b} of {batches} minibatches (dropped; {kept})", signum)
                idx = shuffled[:, b * cfg.batch_size : (b + 1) * cfg.batch_size]
                rows = idx.shape[1]
                xb = torch.index_select(split.x_train, 0, idx.reshape(-1), out=x_batch[: cfg.members * rows])
                yb = torch.index_select(split.y_train, 0, idx.reshape(-1), out=y_batch[: cfg.members * rows])
                total += trainer.step(xb.view(cfg.members, rows, -1), yb.view(cfg.members, rows, -1))
            train_loss = float(total) / batches + float(trainer.decay_loss())
            if not math.isfinite(train_loss):
                stop_reason = f"diverged at epoch {epoch + 1} (training loss {train_loss})"
                break
            mse = self._holdout_mse(split).tolist()
            updated = False
            for k in range(cfg.members):
                if best[k] > 0 and (best[k] - mse[k]) / best[k] > cfg.improvement:
                    best[k] = mse[k]
                    snapshots[k] = self._member_state(k)
                    updated = True
            since_update = 0 if updated else since_update + 1
            epoch += 1
            stats = EpochStats(epoch, train_loss, mse, time.perf_counter() - t0)
            history.append(stats)
            if checkpoint:
                state = {
                    "net": self.net.state_dict(),
                    "optimizer": trainer.optimizer.state_dict(),
                    "generator": gen.get_state(),
                    "best": best,
                    "snapshots": snapshots,
                    "since_update": since_update,
                    "epoch": epoch,
                    "history": [asdict(row) for row in history],
                    "seconds": time.perf_counter() - start,
                }
                save_fit_state(checkpoint, identity, state)
            if callback is not None:
                callback(stats)
        for k in range(cfg.members):
            self._load_member_state(k, snapshots[k])
        final = self._holdout_mse(split)
        self.elites = torch.argsort(final)[: cfg.elites].sort().values
        self.holdout_mse = final.tolist()
        self.fitted = True
        self.net.eval()
        report = FitReport(
            epochs=epoch,
            stop_reason=stop_reason,
            holdout_mse=self.holdout_mse,
            elites=self.elites.tolist(),
            history=history,
            seconds=time.perf_counter() - start,
            precision=precision,
        )
        if stop_reason.startswith("diverged"):
            # every member is back at its last snapshot with a finite holdout error
            raise TrainingDivergedError(f"dynamics training {stop_reason}; members restored to their last good snapshot", report)
        return report

    def _member_state(self, k: int) -> list[Tensor]:
        return [p[k].detach().clone() for p in (*self.net.weights, *self.net.biases)]

    @torch.no_grad()
    def _load_member_state(self, k: int, state: list[Tensor]) -> None:
        for p, value in zip((*self.net.weights, *self.net.biases), state):
            p[k].copy_(value)

    # ---------------------------------------------------------------------------- prediction
    @torch.inference_mode()
    def predict(self, obs: Tensor, act: Tensor) -> EnsemblePrediction:
        """Every member's Gaussian over [s', r] (raw units, s' = s + Δs) and the elite indices."""
        # inputs from NumPy or another device are moved once per call, never per row
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        act = torch.as_tensor(act, dtype=torch.float32, device=self.device)
        x = self.scaler(torch.cat([obs, act], dim=-1))
        if x.is_cuda:  # launch-bound there: one batched pass instead of the cache-sized loop
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=getattr(self, "precision", "fp32") == "bf16"):
                mean, var = predict_batched(self.net, x)
            mean, var = mean.float(), var.float()
        else:
            mean, var = predict_chunked(self.net, x, self.config.predict_chunk, self._hidden_weights())
        mean[..., : self.obs_dim] += obs
        return EnsemblePrediction(mean=mean, var=var, elites=self.elites.clone())

    @torch.inference_mode()
    def predict_rows(self, obs: Tensor, act: Tensor, members: Tensor) -> tuple[Tensor, Tensor]:
        """Row i's Gaussian over [s', r] from member ``members[i]`` alone: mean and variance (B, D).

        What sampling s' ~ T̂ needs when nothing else asks for the other members (a rollout
        without a penalty): on a CPU one member's forward per row instead of E, equal to
        :meth:`predict`'s rows to the bit at one thread (:func:`predict_rows_chunked`). On a GPU,
        where the batched pass is bound by kernel launches rather than arithmetic, it is
        :meth:`predict` and a gather.
        """
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        act = torch.as_tensor(act, dtype=torch.float32, device=self.device)
        members = torch.as_tensor(members, device=self.device)
        if obs.is_cuda:
            pred = self.predict(obs, act)
            rows = torch.arange(obs.shape[0], device=self.device)
            return pred.mean[members, rows], pred.var[members, rows]
        x = self.scaler(torch.cat([obs, act], dim=-1))
        mean, var = predict_rows_chunked(self.net, x, members, self.config.predict_chunk, self._hidden_weights())
        mean[..., : self.obs_dim] += obs
        return mean, var

    # ----------------------------------------------------------------------------- save/load
    def save(self, directory: str | Path) -> None:
        """Weights (``dynamics.pt``, tensors only) + config (``dynamics.json``), each written atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {  # CPU tensors: the file does not depend on where the model was trained
            **{f"net.{k}": v.cpu() for k, v in self.net.state_dict().items()},
            **{f"scaler.{k}": v.cpu() for k, v in self.scaler.state_dict().items()},
            "elites": self.elites.cpu(),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(directory / WEIGHTS_FILE, buffer.getvalue())
        meta = {
            "type": "gaussian_ensemble",
            "format_version": FORMAT_VERSION,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "config": asdict(self.config),
            "holdout_mse": self.holdout_mse,
            "elites": self.elites.tolist(),
        }
        atomic_write_bytes(directory / CONFIG_FILE, json.dumps(meta, indent=2).encode())

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> "GaussianEnsemble":
        """Load a model written by :meth:`save` onto ``device`` (``torch.load(weights_only=True)``: no code runs).

        ``map_location`` is the target device, so a file written by a CUDA run (or holding CUDA
        tensors, as files from other tools may) loads on a CPU-only machine and vice versa.
        """
        target = device if isinstance(device, torch.device) else resolve_device(device)
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.exists():
                raise MopoKitError(f"{directory}: not a dynamics model directory ({path.name} missing)")
        try:
            meta = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MopoKitError(f"{config_path}: unreadable dynamics model metadata ({_one_line(exc)})") from None
        version = meta.get("format_version", 1) if isinstance(meta, dict) else None
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise MopoKitError(
                f"{directory}: dynamics model format {version} was written by a newer mopo_kit "
                f"(this one reads formats up to {FORMAT_VERSION}); upgrade mopo_kit to use it"
            )
        try:
            config = EnsembleConfig(**meta["config"])
            model = cls(meta["obs_dim"], meta["act_dim"], config, device=target)
            state = torch.load(weights_path, map_location=target, weights_only=True)
            model.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
            model.scaler.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("scaler.")})
            model.elites = state["elites"].to(target)
        except MopoKitError as exc:  # a bad config value in dynamics.json
            raise MopoKitError(f"{config_path}: {exc}") from None
        except (KeyError, TypeError, RuntimeError, EOFError, ValueError, AttributeError, pickle.UnpicklingError) as exc:
            raise MopoKitError(f"{directory}: unreadable dynamics model, corrupt or truncated ({type(exc).__name__}: {_one_line(exc)})") from None
        model.holdout_mse = list(meta.get("holdout_mse", []))
        model.fitted = True
        model.net.eval()
        return model


__all__ = ["EnsembleConfig", "GaussianEnsemble", "TrainingDivergedError"]


@hookimpl
def register_dynamics_models(register) -> None:
    register("gaussian_ensemble", GaussianEnsemble, description="MOPO's probabilistic ensemble: 7 members, 5 elites, 4×200 swish")
