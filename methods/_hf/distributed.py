"""Data-parallel training across processes with PyTorch's own engines: DDP and FSDP (FSDP2 ``fully_shard``).

A run is distributed when the process was started by torch's elastic launcher (``tunewise run
--processes N`` starts ``torchrun``; ``torchrun`` or ``accelerate launch`` started by hand work the
same): ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` are in the environment. Then :func:`setup` joins
the process group (gloo on CPU, nccl on CUDA) and returns a :class:`Parallel` the training core
asks at a handful of points; a single process gets :class:`SingleProcess`, whose answers change
nothing.

Semantics: ``batch_size`` is per process, so a step trains ``batch_size × grad_accum × N`` rows.
The step's rows are dealt round-robin to the ranks, every rank gets the same number of rows (a
short last step is filled with target-free copies, which add nothing to the loss or gradients), and
each rank divides its summed loss by the *global* target count of the step, counted on the host
from the shared corpus (no communication). DDP and FSDP average gradients over ranks, so the loss
is multiplied by N: the update equals the single-process update on the same global batch.

Rank 0 writes events, checkpoints and artifacts; the others keep their events in
``events.rank-N.jsonl``. Stop requests (a signal, a callback) are agreed on over a gloo group every
step, so all ranks stop at the same step without a device sync.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from tunewise.methods._hf.batches import MicroBatch, collate
from tunewise.methods._hf.device import Placement
from tunewise.methods._hf.encoding import IGNORE
from tunewise.methods._hf.packing import Packed
from tunewise.plugins.errors import MethodNotRunnable
from tunewise.plugins.parallelism import DEEPSPEED, DistributedSettings, world_from_env


class SingleProcess:
    """One process: every hook is the identity."""

    rank = 0
    world = 1
    strategy = "single"
    is_main = True

    def identity(self) -> dict[str, Any]:
        return {}

    def placement(self, placement: Placement) -> Placement:
        return placement

    def shard(self, batches: Any) -> Any:
        return batches

    def prepare_model(self, model: Any) -> Any:
        return model

    def step_loss(self, model: Any, loss_fn: Any) -> Any:
        return lambda mb: loss_fn(model, mb)

    def step_counts(self, batches: Any, micro: Sequence[MicroBatch]) -> tuple[int, int]:
        """(targets, tokens) of the whole step, over all ranks."""
        return sum(mb.num_targets for mb in micro), sum(mb.num_tokens for mb in micro)

    @property
    def loss_scale(self) -> int:
        return 1

    @contextlib.contextmanager
    def gradient_sync(self, enabled: bool) -> Iterator[None]:
        yield

    def sum(self, tensor: Any) -> Any:
        return tensor

    def agree(self, flag: bool) -> bool:
        return flag

    def agree_stop(self, stop: bool, signal_name: str | None) -> tuple[bool, str | None]:
        return stop, signal_name

    def rng_tensors(self, local: Mapping[str, Any]) -> dict[str, Any]:
        return dict(local)

    def own_rng(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        return dict(tensors)

    def scalar(self, value: Any) -> float:
        return float(value)

    def full_tensors(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        return dict(tensors)

    def like_param(self, full: Any, param: Any) -> Any:
        return full

    def optimizer_state_like_params(self, tensors: Mapping[str, Any], named: Mapping[str, Any]) -> dict[str, Any]:
        return dict(tensors)

    def saveable(self, model: Any, rebuild: Any) -> Any:
        return model

    def barrier(self) -> None:
        pass


class Parallel(SingleProcess):
    """A process of a data-parallel group (see the module docstring)."""

    def __init__(self, rank: int, world: int, local_rank: int, strategy: str, backend: str) -> None:
        import torch.distributed as dist

        self.rank = rank
        self.world = world
        self.local_rank = local_rank
        self.strategy = strategy
        self.backend = backend
        self.is_main = rank == 0
        # Control flags travel over gloo (CPU tensors), so agreeing on a stop costs no device sync.
        self.control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
        self._ddp: Any = None

    def identity(self) -> dict[str, Any]:
        return {"processes": self.world, "strategy": self.strategy}

    def placement(self, placement: Placement) -> Placement:
        if not placement.is_cuda:
            return placement
        import torch

        torch.cuda.set_device(self.local_rank)
        return replace(placement, device=f"cuda:{self.local_rank}")

    def shard(self, batches: Any) -> ShardedBatches:
        return ShardedBatches(batches.rows, batches.batch_size, batches.grad_accum, batches.seed, batches.pad_id,
                              self.rank, self.world)

    def prepare_model(self, model: Any) -> Any:
        """FSDP: shard every decoder layer and the root in place (before the optimizer sees the parameters)."""
        if self.strategy != "fsdp":
            return model
        from torch.distributed.fsdp import fully_shard

        layers = _decoder_layers(model)
        if not layers:
            raise MethodNotRunnable("fsdp: found no decoder layers to shard in this model (no ModuleList of "
                                    "layers); use distributed.strategy: ddp")
        for layer in layers:
            fully_shard(layer)
        fully_shard(model)
        self.track_fsdp(model)
        return model

    def step_loss(self, model: Any, loss_fn: Any) -> Any:
        if self.strategy != "ddp":
            return lambda mb: loss_fn(model, mb)
        import torch
        from torch.nn.parallel import DistributedDataParallel

        class LossModule(torch.nn.Module):
            """The loss as a module, so DDP sees the whole forward (the loss calls submodules directly)."""

            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, mb: MicroBatch) -> Any:
                return loss_fn(self.model, mb)

        device_ids = [self.local_rank] if self.backend == "nccl" else None
        self._ddp = DistributedDataParallel(LossModule(), device_ids=device_ids, gradient_as_bucket_view=True)
        return self._ddp

    def step_counts(self, batches: Any, micro: Sequence[MicroBatch]) -> tuple[int, int]:
        return batches.step_targets, batches.step_tokens

    @property
    def loss_scale(self) -> int:
        return self.world

    @contextlib.contextmanager
    def gradient_sync(self, enabled: bool) -> Iterator[None]:
        """Accumulation micro-batches skip the gradient exchange; the step's last one does it."""
        if enabled:
            yield
        elif self._ddp is not None:
            with self._ddp.no_sync():
                yield
        else:
            for module in self._fsdp_modules:
                module.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                for module in self._fsdp_modules:
                    module.set_requires_gradient_sync(True)

    @property
    def _fsdp_modules(self) -> list[Any]:
        return getattr(self, "_fsdp_cache", [])

    def track_fsdp(self, model: Any) -> None:
        from torch.distributed.fsdp import FSDPModule

        self._fsdp_cache = [m for m in model.modules() if isinstance(m, FSDPModule)]

    def sum(self, tensor: Any) -> Any:
        import torch.distributed as dist

        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def agree(self, flag: bool) -> bool:
        """True on every rank when any rank says True (over the gloo control group)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t.item())

    def agree_stop(self, stop: bool, signal_name: str | None) -> tuple[bool, str | None]:
        """(stop, signal) as any rank saw them: a signal or callback on one rank stops all at this step."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(stop), int(signal_name is not None)], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t[0]), signal_name or ("SIGTERM" if t[1] else None)

    def rng_tensors(self, local: Mapping[str, Any]) -> dict[str, Any]:
        """Every rank's generator states (``rank-N.<key>``; dropout draws differ per rank), for rank 0 to save."""
        import torch.distributed as dist

        out = dict(local)
        for key in sorted(local):  # same keys and sizes on every rank (same devices per process)
            mine = local[key].cpu().contiguous()
            gathered = [mine.new_empty(mine.shape) for _ in range(self.world)]
            dist.all_gather(gathered, mine, group=self.control)
            out.update({f"rank-{rank}.{key}": t for rank, t in enumerate(gathered)})
        return out

    def own_rng(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        prefix = f"rank-{self.rank}."
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        return own or dict(tensors)

    def scalar(self, value: Any) -> float:
        full = getattr(value, "full_tensor", None)
        return float(full() if callable(full) else value)

    def full_tensors(self, tensors: Mapping[str, Any]) -> dict[str, Any]:
        """Sharded (DTensor) entries gathered to full tensors; every rank must call this, in the same order."""
        out = {}
        for name, t in tensors.items():
            full = getattr(t, "full_tensor", None)
            out[name] = full() if callable(full) else t
        return out

    def like_param(self, full: Any, param: Any) -> Any:
        """A full tensor laid out like ``param`` (sharded the same way under FSDP)."""
        mesh = getattr(param, "device_mesh", None)
        if mesh is None:
            return full
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full.to(param.device, param.dtype), mesh, param.placements)

    def optimizer_state_like_params(self, tensors: Mapping[str, Any], named: Mapping[str, Any]) -> dict[str, Any]:
        """Saved optimizer states (``name::key``) sharded like their parameters (moments; steps stay plain)."""
        out = {}
        for flat, value in tensors.items():
            name = flat.rsplit("::", 1)[0]
            param = named.get(name)
            if param is not None and getattr(param, "device_mesh", None) is not None and \
                    tuple(value.shape) == tuple(param.shape):
                out[flat] = self.like_param(value.float(), param)
            else:
                out[flat] = value
        return out

    def saveable(self, model: Any, rebuild: Any) -> Any:
        """FSDP: the trained weights gathered into a plain model built by ``rebuild()`` on rank 0 (None on
        the others; the gather is a collective, so every rank calls this). DDP: the model itself."""
        if self.strategy != "fsdp":
            return model
        full = self.full_tensors(model.state_dict())
        if not self.is_main:
            return None
        plain = rebuild()
        plain.load_state_dict(full)
        return plain

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier(group=self.control)


class ShardedBatches:
    """This rank's share of each step: the step's ``batch_size × grad_accum × world`` rows dealt round-robin."""

    def __init__(self, rows: Sequence[Packed], batch_size: int, grad_accum: int, seed: int, pad_id: int,
                 rank: int, world: int) -> None:
        import math

        from tunewise.methods._hf.batches import PackedBatches

        self._order = PackedBatches(rows, batch_size, grad_accum, seed, pad_id)
        self.rows = self._order.rows
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.seed = seed
        self.pad_id = pad_id
        self.rank = rank
        self.world = world
        self.per_step = batch_size * grad_accum * world
        self.steps_per_epoch = math.ceil(len(self.rows) / self.per_step)
        self.step_targets = 0
        self.step_tokens = 0

    def step_rows(self, epoch: int, index: int) -> list[int]:
        order = self._order.order(epoch)
        return order[index * self.per_step:(index + 1) * self.per_step]

    def step_batches(self, epoch: int, index: int) -> list[MicroBatch]:
        chosen = self.step_rows(epoch, index)
        self.step_targets = sum(self.rows[i].num_targets for i in chosen)
        self.step_tokens = sum(len(self.rows[i]) for i in chosen)
        mine: list[Packed] = [self.rows[i] for i in chosen[self.rank::self.world]]
        share = -(-len(chosen) // self.world)
        while len(mine) < share:
            # Every rank runs the same number of forwards (FSDP gathers in each); the filler trains nothing.
            filler = self.rows[chosen[0]]
            mine.append(Packed(list(filler.input_ids), [IGNORE] * len(filler), list(filler.position_ids), []))
        return [collate(mine[s:s + self.batch_size], self.pad_id) for s in range(0, len(mine), self.batch_size)]

    @property
    def tokens(self) -> int:
        return self._order.tokens


def _decoder_layers(model: Any) -> list[Any]:
    """The repeated transformer blocks (the unit FSDP gathers one at a time)."""
    import torch

    best: list[Any] = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(best):
            best = list(module)
    return best


_CURRENT: SingleProcess = SingleProcess()


def current() -> SingleProcess:
    """The parallel context of this process (a :class:`SingleProcess` unless :func:`setup` joined a group)."""
    return _CURRENT


def setup(values: Mapping[str, Any], placement: Placement, kind: str) -> SingleProcess:
    """Join the process group when launched as one of several processes; the context the run uses."""
    global _CURRENT
    rank, world, local = world_from_env()
    settings = DistributedSettings(**dict(values))
    if world <= 1:
        _CURRENT = SingleProcess()
        return _CURRENT
    strategy = settings.resolved_strategy(kind)
    if strategy in DEEPSPEED:
        raise MethodNotRunnable(
            f"distributed.strategy {strategy}: tunewise's training loop drives PyTorch DDP and FSDP; DeepSpeed "
            "ZeRO engines are not wired in yet. Use fsdp (the ZeRO-3 equivalent: weights, gradients and "
            "optimizer states sharded) or ddp; the Accelerate config written to the output folder records the "
            "DeepSpeed settings for `accelerate launch` with your own script")
    backend = settings.backend
    if backend == "auto":
        backend = "nccl" if placement.is_cuda else "gloo"
    if backend == "nccl" and not placement.is_cuda:
        raise MethodNotRunnable("distributed.backend nccl needs CUDA GPUs; this run is on the CPU (use gloo or auto)")
    import torch.distributed as dist

    if placement.is_cuda:
        import torch

        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    context = Parallel(rank, world, local, strategy, backend)
    _CURRENT = context
    return context
