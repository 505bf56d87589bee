"""Export the best trials' genotypes: one JSON file each and a DARTS-compatible Python file.

File names come from the study name through `safe_name`, so whatever the name holds
(`../`, `/`, spaces, unicode) every file stays inside the chosen directory. The Python file
is an importable module (``<study>_genotypes.py``, an identifier) whose genotype names hold
the study and the trial (``<study>_trial<N>``), so modules of several studies never clash;
BBN head cells follow in its ``BBN_HEADS`` dict, which DARTS' code ignores.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from hls_tune.engine.checks import build_dataclass
from hls_tune.engine.nas.darts_format import darts_python_module, parse_darts_python
from hls_tune.engine.nas.genotype import Genotype, darts_identifier
from hls_tune.engine.safe_io import atomic_write_text, open_regular
from hls_tune.engine.settings import DataConfig
from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.objective import safe_name
from hls_tune.study.study import (
    LoadedStudy,
    pareto_trials,
    ranked_trials,
    trial_config,
    trial_genotype,
    trial_metrics,
)

FORMATS = ("json", "py", "both")


@dataclass(frozen=True)
class ExportedFile:
    """One file export wrote (or found identical)."""

    path: Path
    written: bool


def genotype_record(loaded: LoadedStudy, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The JSON document of one exported trial: study, trial, value, parameters, engine
    settings, the whole genotype (backbone and both heads) and the backbone alone."""
    genotype = Genotype.from_dict(trial_genotype(trial))  # type: ignore[arg-type]
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
        "config": trial_config(trial) or None,
        "metrics": trial_metrics(trial) or None,
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
                "genotype": trial_genotype(t),
            }
            for t in trials
        ],
    }


def module_name(study_name: str) -> str:
    """The exported module's name: ``<study>_genotypes`` made an identifier, so that
    ``import`` reads the file as written (``cifar10-lt-hls`` → ``cifar10_lt_hls_genotypes``)."""
    return darts_identifier(f"{darts_identifier(study_name)[:90]}_genotypes")


def genotype_name(study_name: str, trial_number: int) -> str:
    """The exported genotype's variable: study and trial, unique across studies' modules."""
    return darts_identifier(f"{darts_identifier(study_name)[:90]}_trial{trial_number}")


def _inside(out: Path, name: str) -> Path:
    # Only the folder is resolved: a symlink at the file's own name is the writer's business
    # (refused unless --force, and then replaced rather than followed).
    if Path(name).name != name or name in (".", ".."):
        raise HlsTuneError(f"refusing to write {name!r} outside {out}.")
    return out.resolve() / name


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
        trials = [t for t in pareto_trials(loaded.study) if trial_genotype(t) is not None]
    else:
        trials = [t for t in ranked_trials(loaded.study, top_k) if trial_genotype(t) is not None]
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
        name = loaded.study.study_name
        genotypes = {
            genotype_name(name, t.number): Genotype.from_dict(trial_genotype(t))  # type: ignore[arg-type]
            for t in trials
        }
        files[_inside(out, f"{module_name(name)}.py")] = darts_genotypes_file(
            loaded.study.study_name, genotypes
        )
    return files


def darts_genotypes_file(study_name: str, genotypes: dict[str, Genotype]) -> str:
    """The exported DARTS ``genotypes.py``: a comment naming the study, then the genotypes.

    Nothing from the study name can become code: it goes into a comment through `ascii`,
    which escapes newlines, control and non-ASCII characters. The text is then read back
    with the safe parser (`parse_darts_python`) and must give exactly these genotypes.
    """
    header = (
        f"# Best genotypes of study {study_name!a} (backbone cells, in the namedtuple\n"
        "# form of the original DARTS genotypes.py).\n"
    )
    text = header + darts_python_module(genotypes)
    try:
        parsed = parse_darts_python(text)
    except ConfigError as error:
        raise HlsTuneError(
            f"refusing to write a genotypes.py that does not parse: {error}"
        ) from None
    expected = {darts_identifier(n): g.to_dict() for n, g in genotypes.items()}
    found = {n: g.to_dict() for n, g in parsed.items()}
    # the import, the namedtuple, one assignment per genotype, and BBN's heads if any
    statements = 2 + len(genotypes) + any(g.is_bbn for g in genotypes.values())
    if expected != found or len(ast.parse(text).body) != statements:
        raise HlsTuneError("refusing to write a genotypes.py that holds more than its genotypes.")
    return text


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
        p
        for p, text in files.items()
        if p.is_symlink() or (p.exists() and p.read_text(encoding="utf-8") != text)
    ]
    if conflicts and not force:
        names = ", ".join(str(p) for p in conflicts)
        raise ConfigError(f"{names} exist(s) with different content; pass --force to overwrite.")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path, text in files.items():
        if not path.is_symlink() and path.exists() and path.read_text(encoding="utf-8") == text:
            results.append(ExportedFile(path, written=False))
            continue
        atomic_write_text(path, text, force=force)
        results.append(ExportedFile(path, written=True))
    return results


def exported_data(spec: str) -> tuple[DataConfig, str] | None:
    """The data settings stored in a record written by `export_study` (its trial's
    config), with a description of where they come from; None for any other genotype."""
    path = Path(spec)
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        with open_regular(path, "genotype file") as handle:
            record = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        return None  # load_genotype read it as a genotype; it holds no record to use
    config = record.get("config") if isinstance(record, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        return None
    data = build_dataclass(DataConfig, config["data"], prefix=f"{path.name}: config.data.")
    where = f"study {record.get('study')!r}, trial {record.get('trial')}"
    return data, f"the exported record {path.name} ({where})"
