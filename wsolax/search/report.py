"""The search's record: every trial (setting, seed, outcome, val metrics, seconds) and the chosen
setting, as JSON (to re-derive the table) and markdown (to read)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.trial import TrialState

from wsolax.search.study import FAILURE, RECORDED, best_trial


def trial_rows(study: optuna.Study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.FAIL and FAILURE not in t.user_attrs:
            state = "interrupted"  # retried with the same setting
        else:
            state = {TrialState.COMPLETE: "complete", TrialState.FAIL: "failed",
                     TrialState.PRUNED: "surplus"}.get(t.state, t.state.name.lower())
        rows.append({"number": t.number, "state": state, "value": t.value,
                     "params": dict(t.params), "seed": t.user_attrs.get("seed"),
                     "draw": t.user_attrs.get("draw"), "failure": t.user_attrs.get(FAILURE),
                     "seconds": t.user_attrs.get("seconds"),
                     "retry_of": t.system_attrs.get("failed_trial"),
                     **{k: t.user_attrs[k] for k in RECORDED if k in t.user_attrs}})
    return rows


def write_report(study: optuna.Study, out: str | Path) -> dict:
    out = Path(out)
    rows = trial_rows(study)
    best = best_trial(study)
    search = study.user_attrs.get("search", {})
    chosen = None if best is None else {"trial": best.number, "value": best.value,
                                        "params": dict(best.params),
                                        "seed": best.user_attrs.get("seed")}
    record = {"study": study.study_name, "search": search, "chosen": chosen, "trials": rows}
    (out / "trials.json").write_text(json.dumps(record, indent=2))
    keys = sorted({k for r in rows for k in r["params"]})
    metric = search.get("metric", "value")
    lines = [f"# Search `{study.study_name}`", "",
             f"Config `{search.get('config')}`, selected by {metric} on `{search.get('split')}`, "
             f"seed {search.get('seed')}.", "",
             "| trial | state | " + " | ".join(f"`{k}`" for k in keys)
             + f" | {metric} | Top-1 | seconds |",
             "|---" * (len(keys) + 5) + "|"]
    for r in rows:
        params = " | ".join(_fmt(r["params"].get(k)) for k in keys)
        value = _fmt(r["value"]) if r["state"] == "complete" else (r["failure"] or r["state"])
        lines.append(f"| {r['number']} | {r['state']} | {params} | {value} | "
                     f"{_fmt(r.get('top1_cls'))} | {_fmt(r['seconds'])} |")
    lines += ["", "**Chosen**: " + ("none (no trial completed)" if chosen is None else
              f"trial {chosen['trial']}, {metric} {chosen['value']:.2f}: " + ", ".join(
                  f"`{k}={_fmt(v)}`" for k, v in sorted(chosen["params"].items())))]
    (out / "trials.md").write_text("\n".join(lines) + "\n")
    return record


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
