"""Export the best trials' genotypes: one JSON file each and a DARTS-compatible Python file.

File names come from the study name through `safe_name`, so whatever the name holds
(`../`, `/`, spaces, unicode) every file stays inside the chosen directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from hls_tune.engine.nas.darts_format import darts_python_module
from hls_tune.engine.nas.genotype import Genotype
from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.objective import safe_name
from hls_tune.study.study import LoadedStudy, pareto_trials, ranked_trials

FORMATS = ("json", "py", "both")


@dataclass(frozen=True)
class ExportedFile:
    """One file export wrote (or found identical)."""

    path: Path
    written: bool


def genotype_record(loaded: LoadedStudy, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The JSON document of one exported trial: study, trial, value, parameters, engine
    settings, the whole genotype (backbone and both heads) and the backbone alone."""
    genotype = Genotype.from_dict(trial.user_attrs["genotype"])
    backbone = {
        "normal": [list(e) for e in genotype.normal],
        "normal_concat": list(genotype.normal_concat),
        "reduce": [list(e) for e in genotype.reduce],
        "reduce_concat": list(genotype.reduce_concat),
    }
    settings = loaded.study_file.study
    record = {
        "study": loaded.study.study_name,
        "trial": trial.number,
        "value": trial.values[0] if trial.values else None,
        "metric": settings.metric,
        "params": trial.params,
        "config": trial.user_attrs.get("config"),
        "metrics": trial.user_attrs.get("metrics"),
        "genotype": genotype.to_dict(),
        "backbone": backbone,
    }
    if settings.multi_objective:
        record["values"] = trial.values
        record["objectives"] = [f"architecture_{settings.metric}", settings.size_objective]
    return record


def pareto_record(loaded: LoadedStudy, trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    """`pareto.json`: the front of a multi-objective study, one entry per trial."""
    settings = loaded.study_file.study
    names = [f"architecture_{settings.metric}", settings.size_objective]
    return {
        "study": loaded.study.study_name,
        "objectives": names,
        "directions": list(settings.directions or ()),
        "front": [
            {
                "trial": t.number,
                "values": dict(zip(names, t.values, strict=True)),
                "architecture_params": t.user_attrs.get("architecture_params"),
                "architecture_madds": t.user_attrs.get("architecture_madds"),
                "supernet_val_balanced_accuracy": t.user_attrs.get(
                    "supernet_val_balanced_accuracy"
                ),
                "params": t.params,
                "genotype": t.user_attrs["genotype"],
            }
            for t in trials
        ],
    }


def _inside(out: Path, name: str) -> Path:
    path = (out / name).resolve()
    if path.parent != out.resolve():
        raise HlsTuneError(f"refusing to write {name!r} outside {out}.")
    return path


def plan_export(
    loaded: LoadedStudy, *, top_k: int, out: Path, fmt: str, pareto: bool = False
) -> dict[Path, str]:
    """Every file the export would write, with its content (nothing is written).

    With `pareto` the trials are the Pareto front of a multi-objective study (not the
    `top_k` best) and `pareto.json` lists the front.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)} but got {fmt!r}.")
    if top_k < 1:
        raise ConfigError(f"--top-k must be >= 1 but got {top_k}.")
    if pareto and not loaded.study_file.study.multi_objective:
        raise ConfigError(
            f"--pareto needs a multi-objective study, but study {loaded.study.study_name!r} "
            'has one objective; set [study] directions = ["maximize", "minimize"] '
            "in its study file."
        )
    if pareto:
        trials = [t for t in pareto_trials(loaded.study) if "genotype" in t.user_attrs]
    else:
        trials = [t for t in ranked_trials(loaded.study, top_k) if "genotype" in t.user_attrs]
    if not trials:
        raise HlsTuneError(
            f"study {loaded.study.study_name!r} has no complete trial with a genotype yet."
        )
    stem = safe_name(loaded.study.study_name)
    files: dict[Path, str] = {}
    if pareto:
        document = pareto_record(loaded, trials)
        files[_inside(out, "pareto.json")] = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if fmt in ("json", "both"):
        for rank, trial in enumerate(trials):
            text = json.dumps(genotype_record(loaded, trial), indent=2, sort_keys=True) + "\n"
            files[_inside(out, f"{stem}-trial{trial.number}.json")] = text
            if rank == 0 and not pareto:
                files[_inside(out, "best.json")] = text
    if fmt in ("py", "both"):
        genotypes = {
            f"trial_{t.number}": Genotype.from_dict(t.user_attrs["genotype"]) for t in trials
        }
        header = (
            f'"""Best genotypes of study {loaded.study.study_name!r} (backbone cells, '
            'in the namedtuple form of the original DARTS genotypes.py)."""\n'
        )
        files[_inside(out, f"{stem}_genotypes.py")] = header + darts_python_module(genotypes)
    return files


def export_study(
    loaded: LoadedStudy,
    *,
    top_k: int = 1,
    out: str | Path = "genotypes",
    fmt: str = "both",
    force: bool = False,
    pareto: bool = False,
) -> list[ExportedFile]:
    """Writes the best `top_k` genotypes (with `pareto`: the Pareto front); idempotent;
    refuses to overwrite a different file unless `force` (checked for every file before
    any is written)."""
    out = Path(out)
    files = plan_export(loaded, top_k=top_k, out=out, fmt=fmt, pareto=pareto)
    conflicts = [
        p for p, text in files.items() if p.exists() and p.read_text(encoding="utf-8") != text
    ]
    if conflicts and not force:
        names = ", ".join(str(p) for p in conflicts)
        raise ConfigError(f"{names} exist(s) with different content; pass --force to overwrite.")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path, text in files.items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            results.append(ExportedFile(path, written=False))
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        results.append(ExportedFile(path, written=True))
    return results
