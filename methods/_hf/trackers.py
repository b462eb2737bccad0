"""Optional experiment trackers (``training.report_to``): TensorBoard and MLflow, when installed.

A :class:`TrackingSink` wraps the run's event sink and mirrors progress and eval events into the
trackers; everything else passes through untouched (including the ``stop_requested`` flag the
runner sets on its sink).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunewise.plugins.redaction import redact

_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


class TrackingSink:
    """An event sink that also logs scalars to the configured trackers."""

    def __init__(self, inner: Callable[..., Any], names: Sequence[str], log_dir: Path,
                 params: Mapping[str, Any]) -> None:
        self.inner = inner
        self._tb: Any = None
        self._mlflow: Any = None
        for name in names:
            if importlib.util.find_spec(_PACKAGES[name]) is None:
                inner("log", level="warning",
                      message=f"report_to {name}: the {_PACKAGES[name]} package is not installed; skipped "
                              f"(pip install {_PACKAGES[name]})")
                continue
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(log_dir / "tensorboard"))
                self._tb.add_text("params", "\n".join(f"{k}: {redact(str(v))}" for k, v in params.items()))
            elif name == "mlflow":
                import mlflow

                self._mlflow = mlflow
                mlflow.start_run(run_name=log_dir.name)
                mlflow.log_params({k: redact(str(v))[:500] for k, v in params.items()})  # redacted before cut

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _scalars(self, prefix: str, step: int, values: Mapping[str, Any]) -> None:
        numbers = {f"{prefix}/{k}": float(v) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
        if self._mlflow is not None:
            self._mlflow.log_metrics({k.replace("/", "_"): v for k, v in numbers.items()}, step=step)

    def __call__(self, kind: str, /, **fields: Any) -> Any:
        if kind == "progress":
            self._scalars("train", int(fields["step"]),
                          {k: fields.get(k) for k in ("loss", "lr", "tokens_per_s", "grad_norm")})
        elif kind == "eval":
            self._scalars(f"eval_{fields['phase']}", int(fields["step"]), fields.get("metrics", {}))
        return self.inner(kind, **fields)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._mlflow is not None:
            self._mlflow.end_run()
