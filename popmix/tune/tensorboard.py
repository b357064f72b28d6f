"""Everything popmix writes to TensorBoard: every trial's logs, written by the driver as results
arrive (:class:`TensorBoardLogger`, a Tune callback), the comparison across seeds
(:func:`write_method_summary`) and figures as images (:func:`write_images`).

One run folder per trial, named for what it is (:attr:`popmix.records.trial.TrialSpec.name`, the
trial's name in every output): ``<logdir>/seed<S>/<method>`` for a baseline,
``<method>-member<M>`` for a population member, ``best-of-n-draw<D>`` for best-of-n's draws,
``swarm-run<D>`` for the swarm's runs, so ``tensorboard --logdir`` on the
experiment folder shows every method side by side under readable names (the trial id is an
HParams column); the swarm's surface plots are images under ``surface/``. Tags (x-axis: the
trial's optimizer step):

- ``compare/objective``, ``compare/val_mean_ppl``, ``compare/val_worst_ppl``,
  ``compare/test_mean_ppl``, ``compare/test_worst_ppl``: what methods are compared on, in the
  group that sorts first in the Time Series view (TensorBoard orders groups alphabetically);
- ``val_loss/<domain>``, ``train_loss/<domain>``, ``test_loss/<domain>`` (nats per byte);
- ``weight/<domain>`` (sampling weights in effect), ``loss_weight/<domain>`` when searched;
- ``temperature``, ``lr``, ``grad_norm`` (mean over the steps since the last report, before
  clipping), ``grad_norm_std`` (their spread), ``loss_spikes`` (so far;
  :mod:`popmix.train.health`);
- ``effective_domains``: exp of the entropy of the weights in effect (k = uniform, 1 = one
  domain);
- ``diagnostics/<name>``: a method's own scalars (DoGE: ``score_clip_high``,
  ``score_clip_low``, the shares of its scores the clip cut);
- the HParams plugin: method, seed, member, trial id, the trial's searched values (its final
  spec, after any exploits) and the final weights in effect (``final_weight/<domain>``,
  ``final_loss_weight/<domain>``, ``final_temperature``), with the ``compare/`` tags as
  metrics, so methods compare in one table. Each run writes only its session: with no
  experiment record, TensorBoard builds the table's columns from every session's values
  (it would take one run's record, arbitrarily, for all);
- across seeds, written when the search ends (:func:`write_method_summary`), under
  ``methods/``: the text summary ``comparison`` (each method's intervals and its paired
  verdict against the reference) and one HParams run per method (``method/test_mean_ppl``
  and its ``_lo``/``_hi``, ``method/test_worst_ppl``, ``method/vs_reference`` and its
  ``_lo``/``_hi``, and where present ``method/<group>_test_mean_ppl`` per group of domains
  and ``method/oracle_gap_closed``).

Beside each run's event files, ``popmix_last_step`` holds the last step written, so a resumed
search adds no point twice. Written on the driver, so the files land in the experiment folder
directly, on any cluster.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from ray.tune import Callback

from popmix.records.summary import MethodResult, Summary
from popmix.records.table import exploits_line, format_groups, format_oracle, interval
from popmix.records.trial import TrialSpec
from popmix.tune.resume import rebase

GROUPS = ("val_loss", "train_loss", "test_loss", "weight", "loss_weight", "diagnostics")
SCALARS = {
    "objective": "compare/objective",
    "val_mean_ppl": "compare/val_mean_ppl",
    "val_worst_ppl": "compare/val_worst_ppl",
    "test_mean_ppl": "compare/test_mean_ppl",
    "test_worst_ppl": "compare/test_worst_ppl",
    "effective_domains": "effective_domains",
    "temperature": "temperature",
    "lr": "lr",
    "grad_norm": "grad_norm",
    "grad_norm_std": "grad_norm_std",
    "loss_spikes": "loss_spikes",
}
#: beside each run's event files: the last step written, so a resumed search adds no point twice
LAST_STEP_FILE = "popmix_last_step"
#: the HParams table's metrics: the last point of these series
HPARAM_METRICS = (
    "compare/objective",
    "compare/val_mean_ppl",
    "compare/val_worst_ppl",
    "compare/test_mean_ppl",
    "compare/test_worst_ppl",
)


def _session(w: Any, values: dict[str, Any], metrics: dict[str, float]) -> None:
    """The HParams session of ``w``'s run, without an experiment record (see the module's
    docstring)."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    _, start, end = hparams_summary(values, metrics)
    fw = w._get_file_writer()
    fw.add_summary(start)
    fw.add_summary(end)


def _hparams(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if value is None:
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (bool, int, float, str)):
                    out[f"{key}/{sub}"] = v
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
    return out


class TensorBoardLogger(Callback):
    """Tune callback: per-trial SummaryWriters under ``logdir/seed<S>``."""

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        self._writers: dict[str, Any] = {}
        # trial id -> (run folder, the last step an earlier process wrote there: points up to
        # it are skipped until this process writes one beyond it, then -1)
        self._written: dict[str, tuple[Path, int]] = {}
        self._max_step: dict[str, int] = {}  # the largest step written, kept in LAST_STEP_FILE

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.logdir = rebase(self.logdir)  # a search resumed in another folder

    def _writer(self, trial: Any) -> Any:
        if trial.trial_id not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            spec = TrialSpec.from_config(trial.config)
            folder = self.logdir / f"seed{spec.seed}" / spec.name
            if any(f == folder for f, _ in self._written.values()):
                # two trials with one name (a spec popmix does not make): keep them apart
                folder = folder.with_name(f"{folder.name}_{trial.trial_id}")
            self._writers[trial.trial_id] = SummaryWriter(str(folder))
            mark = folder / LAST_STEP_FILE
            last = int(mark.read_text()) if mark.is_file() else -1
            self._written[trial.trial_id] = (folder, last)
            self._max_step[trial.trial_id] = last
        return self._writers[trial.trial_id]

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        w = self._writer(trial)
        step = int(result.get("step", result.get("training_iteration", 0)))
        folder, skip_through = self._written[trial.trial_id]
        if step <= skip_through:
            # A resumed search replays the reports after a trial's last saved checkpoint:
            # an earlier process wrote those points. (Within one process every point is
            # written: an asynchronous exploit can take a member back to a donor's earlier
            # step.)
            return
        self._written[trial.trial_id] = (folder, -1)
        if step > self._max_step.get(trial.trial_id, -1):
            self._max_step[trial.trial_id] = step
            (folder / LAST_STEP_FILE).write_text(str(step))
        for group in GROUPS:
            for dom, value in (result.get(group) or {}).items():
                w.add_scalar(f"{group}/{dom}", value, step)
        for key, tag in SCALARS.items():
            value = result.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                w.add_scalar(tag, value, step)
        w.flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        self._close(trial, hparams=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self._close(trial, hparams=False)

    def _close(self, trial: Any, hparams: bool) -> None:
        w = self._writers.pop(trial.trial_id, None)
        if w is None:
            return
        try:
            if hparams:
                self._write_hparams(w, trial)
        except Exception as e:  # logging must never stop a search
            print(f"popmix: could not write HParams for {trial.trial_id}: {e}", file=sys.stderr)
        finally:
            w.close()

    @staticmethod
    def _write_hparams(w: Any, trial: Any) -> None:
        """The trial's final spec (after any exploits) and final weights, with its final
        metrics (the last points of the ``compare/`` series, already in the run)."""
        result = trial.last_result or {}
        metrics = {
            tag: float(result[k])
            for k, tag in SCALARS.items()
            if tag in HPARAM_METRICS
            and isinstance(result.get(k), (int, float))
            and math.isfinite(result[k])
        }
        spec = TrialSpec.from_config(trial.config)
        values: dict[str, Any] = {
            "method": spec.method,
            "seed": spec.seed,
            "member": spec.member,
            "trial_id": trial.trial_id,
            **spec.params,
        }
        for key in ("weight", "loss_weight"):
            if isinstance(result.get(key), dict):
                values[f"final_{key}"] = result[key]
        if isinstance(result.get("temperature"), (int, float)):
            values["final_temperature"] = result["temperature"]
        _session(w, _hparams(values), metrics)

    def on_experiment_end(self, trials: list, **info):
        for trial in trials:
            self._close(trial, hparams=False)


def _markdown(summary: Summary) -> str:
    """The methods' intervals and verdicts as a Markdown table (TensorBoard's Text tab)."""
    ref = summary.reference
    lines = [
        f"| method | seeds | mean test ppl [95%] | worst test ppl [95%] | vs {ref} [95%] "
        "| verdict |",
        "|---|---|---|---|---|---|",
    ]

    for name, m in summary.methods.items():
        vs = m.vs_reference
        diff = "-" if vs is None or vs.diff_mean is None else f"{vs.diff_mean:+.3f}"
        if vs is not None and vs.ci95 is not None:
            diff += f" [{vs.ci95[0]:+.3f}, {vs.ci95[1]:+.3f}]"
        verdict = "reference" if name == ref else "-" if vs is None else vs.verdict
        lines.append(
            f"| {name} | {m.test_mean_ppl.n} | {interval(m.test_mean_ppl)} | "
            f"{interval(m.test_worst_ppl)} | {diff} | {verdict} |"
        )
    if summary.exploits:
        lines += ["", exploits_line(summary.exploits)]
    # the by-group and oracle blocks of the printed table, as preformatted text
    for block in (format_groups(summary.groups, ref), format_oracle(summary)):
        if block:
            lines += ["", *("    " + line for line in block)]
    return "\n".join(lines)


def method_metrics(entry: MethodResult) -> dict[str, float]:
    """One method's ``summary.json`` entry as HParams metrics (``method/<name>``)."""
    out: dict[str, float] = {}
    mean, worst = entry.test_mean_ppl, entry.test_worst_ppl
    if mean.mean is not None:
        out["method/test_mean_ppl"] = mean.mean
    if mean.ci95 is not None:
        out["method/test_mean_ppl_lo"], out["method/test_mean_ppl_hi"] = mean.ci95
    if worst.mean is not None:
        out["method/test_worst_ppl"] = worst.mean
    vs = entry.vs_reference
    if vs is not None and vs.diff_mean is not None:
        out["method/vs_reference"] = vs.diff_mean
    if vs is not None and vs.ci95 is not None:
        out["method/vs_reference_lo"], out["method/vs_reference_hi"] = vs.ci95
    closed = entry.oracle_gap_closed
    if closed is not None and closed.mean is not None:
        out["method/oracle_gap_closed"] = closed.mean
    return out


def write_method_summary(logdir: str | Path, summary: Summary) -> None:
    """The comparison across seeds in TensorBoard: a text summary (``comparison``, in the
    Text tab) under ``logdir``, and one HParams run per method (``logdir/<method>``) with
    the method, the reference, the verdict and its intervals as metrics, so the HParams
    table lists the methods side by side."""
    from torch.utils.tensorboard import SummaryWriter

    logdir = Path(logdir)
    # written whole each time (a resumed search writes it again): no second set of points
    for old in logdir.glob("**/events.out.tfevents.*"):
        old.unlink()
    with SummaryWriter(str(logdir)) as w:
        w.add_text("comparison", _markdown(summary), 0)
    ref = summary.reference
    for name, entry in summary.methods.items():
        vs = entry.vs_reference
        values = {
            "method": name,
            "reference": ref,
            "seeds": entry.test_mean_ppl.n,
            "verdict": "reference" if name == ref else "-" if vs is None else vs.verdict,
        }
        metrics = method_metrics(entry)
        by_group = summary.groups.methods.get(name, {}) if summary.groups else {}
        for group, stat in by_group.items():
            if stat.test_mean_ppl.mean is not None:
                metrics[f"method/{group}_test_mean_ppl"] = stat.test_mean_ppl.mean
        with SummaryWriter(str(logdir / name)) as w:
            _session(w, values, metrics)
            for tag, value in metrics.items():
                if math.isfinite(value):
                    w.add_scalar(tag, value, 0)


def write_images(logdir: str | Path, images: list[tuple[str, bytes]]) -> None:
    """PNG figures (``(tag, png bytes)``, e.g. the swarm's surface plots) as TensorBoard
    images under ``logdir`` (its Images tab), replacing any written before."""
    import io

    import matplotlib.image as mpimg
    from torch.utils.tensorboard import SummaryWriter

    logdir = Path(logdir)
    for old in logdir.glob("events.out.tfevents.*"):
        old.unlink()
    with SummaryWriter(str(logdir)) as w:
        for tag, png in images:
            pixels = mpimg.imread(io.BytesIO(png), format="png")
            w.add_image(tag, pixels[..., :3], 0, dataformats="HWC")
