"""``tunewise plan --answers FILE --method M``: write a commented plan sized from the data, model and hardware."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunewise.plugins.errors import TunewiseError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--answers", required=True, metavar="FILE", help="answers YAML (see README: The answers file)")
    parser.add_argument("--method", required=True, help="method id (see `tunewise plugins`)")
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="data file or folder to train on and audit (default: the answers' data.path)")
    parser.add_argument("--model", default=None,
                        help="local model folder or cached hub id (default: the answers' model, else the embedded one)")
    parser.add_argument("--hardware", default=None, metavar="NAME",
                        help="hardware from the catalogue the run is sized for (default: the answers'; `cpu` = here)")
    parser.add_argument("--out", default=None, metavar="PLAN",
                        help="write the plan YAML here (default: print it)")


def main(args: argparse.Namespace) -> int:
    from tunewise.advisor.answers import load_answers
    from tunewise.advisor.plan_sizing import size_for
    from tunewise.advisor.plans import parse_plan
    from tunewise.advisor.tui.config_form import (
        TRAINING_PREFIX,
        plan_document,
        plan_sections,
        plan_yaml,
        with_defaults,
    )
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.redaction import redact

    profile = load_answers(args.answers)
    host = get_host()
    method = host.method(args.method)  # an unknown id is a clear error listing the known ones
    data = args.data or profile.data.path
    model = args.model or profile.model.name
    if not data:
        raise PlanCommandError(f"no data to plan for: pass --data PATH or set data.path in {args.answers}")
    from tunewise.advisor.audit import audit

    report = audit(data, model=model)
    sized = size_for(args.method, profile, report, model=args.model, hardware=args.hardware)
    config_class = getattr(method, "config_class", None)
    sections = plan_sections(args.method, config_class, model=model, data=data)
    sized_ids = {TRAINING_PREFIX + name: value for name, value in sized.settings.items()}
    sections = with_defaults(sections, sized_ids)
    values = {q.id: q.default for s in sections for q in s.questions}
    document, errors = plan_document(args.method, sections, values)
    if errors:  # a sized value the settings class refuses: a bug in the sizing, named by field
        where, message = next(iter(errors.items()))
        from tunewise.advisor.plans import PlanError

        raise PlanError(f"{where}: {message}")
    out = Path(args.out).expanduser() if args.out else None
    reasons = {TRAINING_PREFIX + name: reason for name, reason in sized.reasons.items()}
    text = plan_yaml(document, sections, f"tunewise run {out or 'plan.yaml'}", reasons=reasons,
                     writer="`tunewise plan`")
    parse_plan(text, source=str(out or "plan.yaml"), base_dir=(out.parent if out else Path.cwd()).resolve())
    if out is None:
        sys.stdout.write(redact(text))
        return 0
    _write(out, redact(text))
    print(f"plan written to {out}" + (f" (training sized for {sized.estimated_hours * 60:.0f} min on the hardware)"
                                      if sized.estimated_hours is not None else ""), file=sys.stderr)
    return 0


class PlanCommandError(TunewiseError):
    """No data to plan for, or the plan file could not be written where ``--out`` says."""


def _write(out: Path, text: str) -> None:
    """Write ``text`` to ``out`` whole or not at all (a temporary file renamed over it)."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if out.is_dir():
            raise IsADirectoryError(f"{out} is a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PlanCommandError(f"--out {out}: cannot write the plan there ({exc.strerror or exc})") from None
