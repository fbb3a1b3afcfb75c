"""The markdown report from stored results: report.md, PR-comment ready.

Harness results open with a verdict (what was covered, parity, faster or slower than
scikit-learn per batch band, which providers ran and why others did not), then speed-ups with
bootstrap confidence intervals, latency, parity, conformance, cold start and environment tables;
plain pytest-benchmark JSON gets a table of its benchmarks (median, IQR, ops).
Rows of different benchmarks (machines, providers, user models that differ) never share a cell.

The page (report.html, :mod:`harness.reports.html`), its plots (:mod:`harness.reports.plots`)
and ``harness compare`` (:mod:`harness.reports.compare`) live next to it, on the row helpers of
:mod:`harness.reports.rows`.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from harness.reports.rows import (
    _error_over_bound,
    _extra,
    _fmt_ms,
    _fmt_ms4,
    _fmt_ratio,
    _fmt_time,
    _fmt_x,
    _parity_rows,
    _provider,
    _quartiles,
    _real,
    _rows,
    _samples,
    _Series,
    _series,
    _Speedup,
    _Speedups,
    _speedups,
    _table,
    latest_runs,
    runtime_of,
)
from harness.results.schema import PROVIDERS
from harness.results.store import ResultFile, benchmark_key, result_order

__all__ = ["render_markdown"]


#: The providers the harness knows, as it spells them.
_PROVIDERS = tuple(PROVIDERS)
#: Fewest raw samples a percentile is shown from (the median: any; p90: 10; p99: 100).
_ROUNDS_FOR = {"p90": 10, "p99": 100}


#: Batch bands of the verdict: (smallest, largest or None, label).
_BANDS = ((1, 99, "batch < 100"), (100, 999, "batch 100-999"), (1000, None, "batch ≥ 1,000"))


def _speedup_cell(row: dict[str, Any] | None, speedups: _Speedups) -> str:
    if row is None:
        return "-"
    found = speedups.get(id(row))
    median = _fmt_ms(row["stats"]["median"])
    return f"{'-' if found is None else found.text()} ({median})"


def _environment(results: Sequence[ResultFile]) -> list[tuple[str, str]]:
    out = []
    for result in results:
        h = result.harness
        m, v, g = h.get("machine") or {}, h.get("versions") or {}, h.get("git") or {}
        memory = m.get("memory_bytes")
        out.append(
            (
                result.label,
                f"{m.get('cpu_model')}, {m.get('cores')} cores"
                + (
                    f" (cgroup quota {m['cgroup_cpu_quota']:g})"
                    if m.get("cgroup_cpu_quota")
                    else ""
                )
                + (f", {memory / 2**30:.0f} GiB" if memory else "")
                + f"; provider {h.get('provider')}"
                + (f"; profile {h['profile']}" if h.get("profile") else "")
                + "; "
                + ", ".join(f"{k} {val}" for k, val in v.items() if val)
                + f"; commit {str(g.get('commit') or '-')[:12]}"
                + (" (dirty)" if g.get("dirty") else "")
                + (f"; {result.data['datetime']}" if result.data.get("datetime") else ""),
            )
        )
    return out


def _harness_sections(results: Sequence[ResultFile], speedups: _Speedups) -> list[str]:
    """Speed-up (with scaling and onnxruntime releases), latency, parity, conformance, cold
    start and skips of harness results."""
    by_series, engines = _series(results)
    rows = [row for cells in by_series.values() for row in cells.values()]
    batches = sorted({_extra(r).get("batch_size", 0) for r in rows})
    lines = ["## Speed-up against scikit-learn (same run; median latency in brackets)", ""]
    lines += ["Each engine against scikit-learn on the same number of threads.", ""]
    lines += [
        "Speed-up: scikit-learn's median / the engine's median, with its 95% bootstrap "
        "interval in square brackets (raw samples of both rows, as `harness gate` computes "
        "it). **Bold with ▼**: slower than scikit-learn.",
        "",
    ]
    body = []
    for (case, series), cells in sorted(by_series.items()):
        if series.startswith("sklearn"):
            continue
        body.append([case, series] + [_speedup_cell(cells.get(b), speedups) for b in batches])
    lines += _table(["case", "engine", *[f"batch {b:,}" for b in batches]], body)
    lines += _threads_section(by_series)
    lines += _runtime_sections(results)
    lines += _latency_section(by_series)
    lines += _parity_section(by_series, engines, _user_parity(results))
    conformance = [row for result in results for row in result.harness.get("conformance", [])]
    if conformance:
        from harness.reports.conformance import conformance_markdown
        from harness.results.schema import ConformanceRow

        rows_c = [ConformanceRow(**row) for row in conformance]
        lines += ["", *conformance_markdown(rows_c).rstrip().splitlines()]
    lines += _cold_start_section(results)
    skipped = [s for result in results for s in result.harness.get("skipped", [])]
    if skipped:
        unique = list(dict.fromkeys((str(s["id"]), str(s["reason"])) for s in skipped))
        lines += ["", "## Skipped", ""]
        lines += _table(["benchmark", "reason"], [list(s) for s in unique])
    return lines


def _percentile(row: dict[str, Any], name: str) -> str:
    """p90 / p99 in ms where the row has the rounds to place it, else "-"."""
    if int(row["stats"].get("rounds") or len(_samples(row))) < _ROUNDS_FOR[name]:
        return "-"
    value = _real(_extra(row).get(f"{name}_ms"))
    return "-" if value is None else _fmt_ms4(value / 1e3)


def _latency_section(by_series: _Series) -> list[str]:
    body = []
    for (case, series), cells in sorted(by_series.items()):
        for batch, row in sorted(cells.items()):
            quartiles = _quartiles(row)
            iqr = "-" if quartiles is None else " to ".join(_fmt_ms4(q) for q in quartiles)
            throughput = _real(_extra(row).get("samples_per_s"))
            if throughput is None and batch:
                throughput = batch / float(row["stats"]["median"])
            body.append(
                [
                    case,
                    series,
                    f"{batch:,}",
                    str(row["stats"].get("rounds", "-")),
                    _fmt_ms4(float(row["stats"]["median"])),
                    iqr,
                    _percentile(row, "p90"),
                    _percentile(row, "p99"),
                    "-" if throughput is None else f"{throughput:,.0f}",
                ]
            )
    header = ["case", "engine", "batch", "rounds", "median ms", "IQR ms (q1 to q3)", "p90 ms"]
    lines = ["", "## Latency percentiles and throughput", ""]
    lines += [
        f"One call on a batch, in ms. p90 is shown from {_ROUNDS_FOR['p90']} rounds on and p99 "
        f"from {_ROUNDS_FOR['p99']} ('-': too few rounds to place it).",
        "",
    ]
    return lines + _table([*header, "p99 ms", "samples/s"], body) + _repeated_rows(by_series)


def _repeated_rows(by_series: _Series) -> list[str]:
    """A note on batches made of fewer distinct rows than their size (a user's data with
    fewer rows than the batch, tiled): their timing may not represent varied data."""
    repeated: dict[str, dict[int, int]] = defaultdict(dict)
    for (case, _), cells in by_series.items():
        for batch, row in cells.items():
            distinct = _extra(row).get("distinct_rows")
            if isinstance(distinct, int):
                repeated[case][batch] = distinct
    lines = []
    for case, batches in sorted(repeated.items()):
        each = ", ".join(
            f"batch {b:,} of {n:,} distinct row{'s' if n > 1 else ''}"
            for b, n in sorted(batches.items())
        )
        lines.append(
            f"Repeated rows: {case}'s data has fewer distinct rows than these batches, which "
            f"repeat them (rows tiled) and may time differently from varied data: {each}."
        )
    return ["", *lines] if lines else []


def _fmt_err(value: float | None) -> str:
    return "-" if value is None else (f"{value:.2g}" if math.isfinite(value) else str(value))


#: A user model's row parity (``harness.cases.usermodel``, the plugin) -> the report's status
#: where its run holds no verdict of the pair's checks; "checked": results before "paired".
_USER_STATUS = {
    "pass": "pass",
    "fail": "FAIL",
    "unchecked": "unchecked",
    "paired": "not run",
    "checked": "not run",
    None: "not recorded",
}


def _user_parity(results: Sequence[ResultFile]) -> dict[int, str]:
    """Each user ONNX row's parity, keyed by the id of its ``extra_info``: "pass" or "FAIL"
    (the verdict of the pair's checks: the run's ``harness.parity`` block, or the session's
    ``harness_check`` recorded by the plugin), "not run" (a reference, its checks not run:
    ``--no-parity``), "not recorded" (a pytest session with no ``harness_check`` of the
    model), "unchecked" (no reference)."""
    out: dict[int, str] = {}
    for result in results:
        block = result.harness.get("parity")
        for row in result.benchmarks:
            e = _extra(row)
            if e.get("origin") != "user" or e.get("engine") == "sklearn":
                continue
            status = e.get("parity")
            if isinstance(block, dict) and block.get("model") == e.get("case"):
                status = block.get("verdict")
            out[id(e)] = _USER_STATUS.get(status, str(status))
    return out


def _parity_section(
    by_series: _Series, engines: dict[tuple[str, str], str], user_parity: dict[int, str]
) -> list[str]:
    body = []
    for case, engine, e in _parity_rows(by_series, engines):
        agreement = _real(e.get("parity_label_agreement"))
        least = _real(e.get("parity_label_min"))
        labels = "-" if agreement is None else f"{agreement:.4f}"
        labels += "" if agreement is None or least is None else f" (≥ {least:g})"
        if e.get("parity") == "quantized":  # int8 against its own fp32 export
            q = e.get("quantized_parity") or {}
            rel = _real(q.get("max_rel_err"))
            agreement = _real(q.get("label_agreement"))
            cells = ["-", "-" if rel is None else f"{rel:.2g} (vs fp32)", "-"]
            labels = "-" if agreement is None else f"{agreement:.4f} (vs fp32)"
        else:
            ratio = _error_over_bound(e)
            rtol, atol = _real(e.get("parity_rtol")), _real(e.get("parity_atol"))
            bound = "" if rtol is None or atol is None else f" (atol {atol:g}, rtol {rtol:g})"
            cells = [
                _fmt_err(_real(e.get("parity_max_abs_err"))),
                _fmt_err(_real(e.get("parity_max_rel_err"))),
                "-" if ratio is None else f"≤ {_fmt_err(ratio)}{bound}",
            ]
        body.append([case, engine, user_parity.get(id(e), str(e.get("parity"))), *cells, labels])
    if not body:  # no exported model of the zoo (a user's model: its own parity section)
        return []
    header = ["case", "engine", "status", "worst abs error", "worst rel error (-: not stored)"]
    header += ["error / bound, at most (-: bound not stored)", "label agreement (≥ bound)"]
    lines = ["", "## Parity (ONNX against scikit-learn on each case's test rows)", ""]
    lines += [
        "Each export against its scikit-learn original when it was exported. The bound is "
        "|err| ≤ atol + rtol x |reference| per row; error / bound is at most min(abs error / "
        "atol, rel error / rtol), below 1 within the bound. Results written before the relative "
        "error and bound were stored show '-' there. int8 models are compared with their fp32 "
        "export. Your own model's status is the verdict of its pair's checks (`harness run "
        "--model M --reference R`, or `harness_check` in the pytest session that stored it): "
        "pass, FAIL, not run (`--no-parity`), or unchecked (no reference).",
        "",
    ]
    return lines + _table(header, body)


_THREADS = re.compile(r" t(\d+)")  # in a series name: engine@provider tN


def _threads_section(by_series: _Series) -> list[str]:
    """Multi-core scaling: each series on k > 1 threads against itself on 1 thread, and its
    speed-up against scikit-learn at scikit-learn's fastest thread setting; [] when the rows
    hold one thread setting only."""
    rows = [row for cells in by_series.values() for row in cells.values()]
    if len({_extra(r).get("threads") for r in rows}) < 2:
        return []
    body = []
    for (case, series), cells in sorted(by_series.items()):
        found = _THREADS.search(series)
        if found is None or int(found[1]) < 2:
            continue
        k, head, tail = int(found[1]), series[: found.start()], series[found.end() :]
        single = by_series.get((case, f"{head} t1{tail}"), {})
        for batch, row in sorted(cells.items()):
            e, tk = _extra(row), float(row["stats"]["median"])
            t1 = single[batch]["stats"]["median"] if batch in single else None
            efficiency = e.get("scaling_efficiency")
            if efficiency is None and t1 is not None:  # results older than the field
                efficiency = t1 / (k * tk)
            best = e.get("sklearn_best_threads")
            reference = by_series.get((case, f"sklearn t{best}{tail}"), {}).get(batch)
            n_jobs = None if reference is None else _extra(reference).get("n_jobs")
            setting = "-" if best is None else f"sklearn t{best}"
            setting += "" if n_jobs is None else f" (n_jobs={n_jobs})"
            body.append(
                [
                    case,
                    head + tail,
                    f"{batch:,}",
                    str(k),
                    _fmt_ms(t1),
                    _fmt_ms(tk),
                    "-" if efficiency is None else f"{efficiency:.2f}",
                    _fmt_x(e.get("speedup_vs_sklearn_best")),
                    setting,
                ]
            )
    header = ["case", "engine", "batch", "threads k", "t1 median", "tk median"]
    header += ["efficiency t1 / (k x tk)", "tk vs scikit-learn at its best", "its best setting"]
    lines = ["", "## Multi-core scaling", ""]
    lines += ["Efficiency 1.0: k threads are k times as fast as one (same run).", ""]
    return lines + _table(header, body)


def _version_order(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3]) or (0,)


def _runtime_sections(results: Sequence[ResultFile]) -> list[str]:
    """Where the shown runs hold several onnxruntime releases on one machine (the runtime
    matrix, ``tox -m runtimes``): each ONNX benchmark's median per release with the newest
    against the oldest, and each export's worst parity error per release."""
    by_machine: dict[str, list[ResultFile]] = defaultdict(list)
    for result in results:
        if not result.plain:
            by_machine[str(result.harness.get("machine_id"))].append(result)
    lines: list[str] = []
    for machine, runs in sorted(by_machine.items()):
        releases = sorted({runtime_of(r) for r in runs}, key=_version_order)
        if len(releases) < 2:
            continue
        medians: dict[tuple[Any, ...], dict[str, float]] = defaultdict(dict)
        forms: dict[tuple[Any, ...], dict[str, str]] = defaultdict(dict)
        errors: dict[tuple[str, str], dict[str, float | None]] = defaultdict(dict)
        for result in runs:
            release = runtime_of(result)
            for row in result.benchmarks:
                key = benchmark_key(row, provider=result.harness.get("provider"))
                if not str(key.engine).startswith("onnx"):
                    continue  # scikit-learn and torch rows do not run on onnxruntime
                cell = (key.case, key.engine, key.provider, key.batch_size, key.threads)
                medians[cell][release] = float(row["stats"]["median"])
                forms[cell][release] = str(_extra(row).get("model_sha256") or "")
                error = _extra(row).get("parity_max_abs_err")
                errors[(str(key.case), str(key.engine))][release] = error
        oldest, newest = releases[0], releases[-1]
        lines += [
            "",
            f"## Across onnxruntime releases ({machine})",
            "",
            f"Median latency per release; the last column is {newest} against {oldest} "
            "(below 1: faster on the newer release). † marks an export that differs from the "
            f"newest release's (a form that release loads, see the README's runtime matrix).",
            "",
        ]
        body = []
        for cell, per in sorted(medians.items(), key=lambda kv: tuple(map(str, kv[0]))):
            case, engine, provider, batch, threads = cell
            newest_form = forms[cell].get(newest)
            cells = [
                "-"
                if release not in per
                else _fmt_ms(per[release])
                + (" †" if newest_form and forms[cell][release] != newest_form else "")
                for release in releases
            ]
            ratio = f"{per[newest] / per[oldest]:.2f}" if oldest in per and newest in per else "-"
            where = f"{batch:,}" if isinstance(batch, int) else str(batch)
            body.append([str(case), str(engine), provider, where, str(threads), *cells, ratio])
        header = ["case", "engine", "provider", "batch", "threads", *releases]
        lines += _table([*header, f"{newest} / {oldest}"], body)
        lines += ["", "Worst parity error against scikit-learn on the case's test rows:", ""]
        body = [
            [case, engine]
            + [
                "-" if per.get(release) is None else f"{float(per[release]):.3g}"  # type: ignore[arg-type]
                for release in releases
            ]
            for (case, engine), per in sorted(errors.items())
        ]
        lines += _table(["case", "engine", *releases], body)
    return lines


def _plain_sections(results: Sequence[ResultFile]) -> list[str]:
    """Plain pytest-benchmark results: one table row per benchmark."""
    several = len(results) > 1
    body = []
    for result in results:
        for row in result.benchmarks:
            stats = row["stats"]
            ops = stats.get("ops")
            cells = [
                benchmark_key(row, plain=True).id,
                _fmt_time(stats["median"]),
                _fmt_time(stats.get("iqr")),
                "-" if not isinstance(ops, int | float) else f"{ops:,.1f}",
                str(stats.get("rounds", "-")),
                "yes" if stats.get("data") else "no",
            ]
            body.append([result.label, *cells] if several else cells)
    header = ["benchmark", "median", "IQR", "ops/s", "rounds", "raw samples"]
    lines = ["## pytest-benchmark results", ""]
    lines += _table(["run", *header] if several else header, body)
    if any(cells[-1] == "no" for cells in body):
        lines += [
            "",
            "Without raw samples (pytest-benchmark's --benchmark-save-data) `harness gate` "
            "shows medians but cannot test a change.",
        ]
    return lines


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    """'1.22.1' sorts before '1.32.0' (and '1.9' before '1.10')."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.+-]", version))


def _fmt_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def _fmt_g(value: float | None, scale: float = 1.0) -> str:
    """Three significant digits; whole numbers from 1,000 on (never an exponent)."""
    if value is None:
        return "-"
    scaled = value * scale
    return f"{scaled:,.0f}" if abs(scaled) >= 1000 else f"{scaled:.3g}"


def _cold_start_section(results: Sequence[ResultFile]) -> list[str]:
    """Cold start per model (``harness.timing.coldstart``): one row per model, provider and
    onnxruntime version, a model's versions next to each other, oldest first; [] when no
    result holds a ``cold_start`` block."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for result in sorted(results, key=result_order):
        machine = str(result.harness.get("machine_id"))
        versions = result.harness.get("versions") or {}
        for entry in result.harness.get("cold_start", []):
            version = entry.get("onnxruntime") or versions.get("onnxruntime") or "?"
            model = (entry["case"], entry["engine"], entry.get("provider") or "-")
            sha = entry.get("model_sha256") or ""
            key: tuple[str, ...] = (*model, sha, machine, str(version))
            found[key] = entry  # a later run of the same model and version replaces it
    if not found:
        return []
    machines = {key[4] for key in found}
    shas: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for key in found:
        shas[key[:3]].add(key[3])
    body, failures = [], []
    for key in sorted(found, key=lambda k: (*k[:5], _version_key(k[5]))):
        case, engine, provider, sha, machine, version = key
        e = found[key]
        label = f"{engine}@{provider}" + (f" t{e['threads']}" if e.get("threads") else "")
        label += f" on {machine}" if len(machines) > 1 else ""
        label += f" ({sha[:8]})" if len(shas[key[:3]]) > 1 else ""
        nodes = "-" if e.get("nodes") is None else f"{e['nodes']:,}"
        if e.get("function_nodes"):
            nodes += f" (+{e['function_nodes']:,} in functions)"
        median, first = e.get("session_seconds_median"), e.get("session_seconds_first")
        session = _fmt_g(median, 1e3) + ("" if first is None else f" ({_fmt_g(first, 1e3)})")
        if e.get("error"):
            failures.append(f"Cold start of {case} {label} on onnxruntime {version}: {e['error']}")
            if median is None:
                session = "failed"
        peak, base = e.get("peak_rss_bytes"), e.get("rss_after_import_bytes")
        export = e.get("export_seconds")
        body.append(
            [
                case,
                label,
                version,
                _fmt_bytes(e.get("bytes")),
                nodes,
                "-" if export is None else (f"{export:.2f}" if export < 10 else f"{export:.0f}"),
                session,
                _fmt_g(e.get("first_call_seconds"), 1e3),
                _fmt_g(peak, 2**-20),
                "-" if peak is None or base is None else f"+{(peak - base) / 2**20:.3g}",
            ]
        )
    header = ["case", "engine", "onnxruntime", "size", "nodes", "export s"]
    header += ["session ms, median (first)", "first call ms", "peak RSS MiB", "over import MiB"]
    lines = ["", "## Cold start", ""]
    lines += [
        "Each model loaded in a fresh Python process with the benchmark's session settings: "
        "session creation (the median of up to 5 after the process's first; the first in "
        "brackets), the first call on one row, the process's peak resident memory and its "
        "rise over the memory right after `import onnxruntime`.",
        "",
    ]
    lines += _table(header, body)
    return lines + (["", *failures] if failures else [])


def render_markdown(results: Sequence[ResultFile], title: str = "Harness report") -> str:
    """A verdict first, then speed-up per case and batch size (with intervals), latency
    percentiles, parity, conformance, skips and environment; for plain pytest-benchmark
    files, a table of their benchmarks.

    Only the latest run per machine, provider, onnxruntime release and model is shown; older
    runs are counted.
    """
    latest = latest_runs(results)[0]
    return _markdown(results, title, _speedups(latest))


def _markdown(results: Sequence[ResultFile], title: str, speedups: _Speedups) -> str:
    results, older = latest_runs(results)
    ours = [r for r in results if not r.plain]
    plain = [r for r in results if r.plain]
    lines = [f"# {title}", ""]
    if older:
        lines += [
            "Latest run per machine, provider, onnxruntime release and model; "
            f"{len(older)} older run(s) not shown (compare runs with `harness compare`).",
            "",
        ]
    verdict = _verdict(ours, speedups)
    lines += [*verdict, ""] if verdict else []
    lines += _pair_parity(ours)
    if not _rows(results):
        return "\n".join([*lines, "No benchmark rows in these results.", ""])
    if _rows(ours):
        lines += _harness_sections(ours, speedups)
    if _rows(plain):
        lines += ["", *_plain_sections(plain)] if _rows(ours) else _plain_sections(plain)
    lines += ["", "## Environment", ""]
    lines += _table(["result", "machine and versions"], _environment(results))
    return "\n".join(lines) + "\n"


def _pair_verdicts(
    results: Sequence[ResultFile],
) -> list[tuple[Any, str, str, list[dict[str, Any]]]]:
    """(model, PASS / **FAIL**, counts per status, outcomes) of each ``harness run --model
    --reference`` parity block, once per model."""
    out = []
    seen = set()
    for result in results:
        parity = result.harness.get("parity")
        if not isinstance(parity, dict) or parity.get("model") in seen:
            continue
        seen.add(parity.get("model"))
        outcomes = [o for o in parity.get("outcomes", []) if isinstance(o, dict)]
        verdict = "PASS" if parity.get("verdict") == "pass" else "**FAIL**"
        counts = Counter(str(o.get("status")) for o in outcomes)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        out.append((parity.get("model"), verdict, summary, outcomes))
    return out


def _pair_parity(results: Sequence[ResultFile]) -> list[str]:
    """The verdict of ``harness run --model --reference``'s parity checks, first."""
    lines: list[str] = []
    for model, verdict, summary, outcomes in _pair_verdicts(results):
        lines += [f"## Parity of {model}: {verdict}", "", f"{summary}.", ""]
        body = [
            [
                str(o.get("check")),
                str(o.get("status")),
                "-" if o.get("measured") is None else f"{float(o['measured']):.3g}",
                str(o.get("bound", "")).replace("|", "/"),
            ]
            for o in outcomes
            if o.get("status") != "pass"
        ]
        if body:
            lines += [*_table(["check", "status", "measured", "bound"], body), ""]
    return lines


# -- verdict ------------------------------------------------------------------------------


def _verdict(results: Sequence[ResultFile], speedups: _Speedups) -> list[str]:
    """What a reader needs first: coverage, parity, speed against scikit-learn per batch band,
    providers; one bullet each, the detail in the sections below."""
    rows = _rows(results)
    if not rows and not any(isinstance(r.harness.get("parity"), dict) for r in results):
        return []
    lines = ["## Verdict", ""]
    bullets = [_coverage(results)] if rows else []
    bullets += _parity_verdict(results)
    bullets += _speed_verdict(results, speedups)
    bullets += _provider_verdict(results)
    return lines + [f"- {b}" for b in bullets if b]


def _coverage(results: Sequence[ResultFile]) -> str:
    rows = _rows(results)
    zoo = sorted({str(_extra(r).get("case")) for r in rows if _extra(r).get("origin") != "user"})
    users = sorted({str(_extra(r).get("case")) for r in rows if _extra(r).get("origin") == "user"})
    engines = sorted({str(_extra(r).get("engine")) for r in rows} - {"sklearn"})
    batches = sorted({b for r in rows if isinstance(b := _extra(r).get("batch_size"), int)})
    threads = sorted({t for r in rows if isinstance(t := _extra(r).get("threads"), int)})
    what = []
    if zoo:
        what.append(f"{len(zoo)} zoo case{'s' if len(zoo) > 1 else ''} ({', '.join(zoo)})")
    if users:
        what.append(f"your model{'s' if len(users) > 1 else ''} {', '.join(users)}")
    runs = len(results)
    reference = _reference(results)
    against = "(no reference: ONNX alone)" if reference is None else f"against {reference[0]}"
    return (
        f"**Covered:** {' and '.join(what)}; engines {', '.join(engines) or 'none'} {against}"
        f"; batch sizes {', '.join(f'{b:,}' for b in batches)}; threads "
        f"{', '.join(map(str, threads))}; {len(rows)} benchmarks from {runs} "
        f"run{'s' if runs > 1 else ''}."
    )


#: The libraries a reference row's model comes from, in the order they are named.
_LIBRARIES = ("scikit-learn", "PyOD")


def _library(extra: dict[str, Any]) -> str:
    """The library of a reference row's model: PyOD for the zoo's ``pyod-*`` cases and for a
    user's PyOD estimator (by its class name), else scikit-learn."""
    from engines.native.pyod import PYOD_EXPORTABLE

    pyod = str(extra.get("case")).startswith("pyod-") or extra.get("estimator") in PYOD_EXPORTABLE
    return "PyOD" if pyod else "scikit-learn"


def _reference(results: Sequence[ResultFile]) -> tuple[str, str] | None:
    """What the engines are timed against, in words (the reference rows, engine ``sklearn``):
    (after "against", after "slower than"), e.g. ("its PyOD reference", the same) for one
    user model, ("scikit-learn and PyOD (each case's reference)", "the reference") for a zoo
    of both; None where no reference ran (a user's .onnx alone)."""
    rows = _rows(results)
    references = [_extra(r) for r in rows if _extra(r).get("engine") == "sklearn"]
    if not references:
        return None
    found = {_library(e) for e in references}
    library = " and ".join(lib for lib in _LIBRARIES if lib in found)
    if all(_extra(r).get("origin") == "user" for r in rows):
        n = len({e.get("case") for e in references})
        words = f"its {library} reference" if n == 1 else f"their {library} references"
        return words, words
    if len(found) == 1:
        return library, library
    return f"{library} (each case's reference)", "the reference"


def _parity_verdict(results: Sequence[ResultFile]) -> list[str]:
    out = []
    exports: dict[tuple[str, str], str] = {}
    for row in _rows(results):
        e = _extra(row)
        if e.get("parity") in ("pass", "fail") and e.get("origin") != "user":
            exports[(str(e.get("case")), str(e.get("engine")))] = str(e.get("parity"))
    conformance = [row for result in results for row in result.harness.get("conformance", [])]
    zoo = any(_extra(r).get("origin") != "user" for r in _rows(results))
    if exports or conformance or zoo:
        parts = []
        if exports:
            counts = Counter(exports.values())
            failed = sorted(f"{c} {e}" for (c, e), s in exports.items() if s == "fail")
            parts.append(
                f"exports checked on each case's test rows: {counts['pass']} pass, "
                + (f"**{counts['fail']} fail** ({', '.join(failed)})" if failed else "0 fail")
            )
        if conformance:
            from harness.reports.conformance import conformance_counts
            from harness.results.schema import ConformanceRow

            n = conformance_counts([ConformanceRow(**c) for c in conformance])
            bad = n["fail"] + n["xpass"]
            parts.append(
                f"conformance suite {len(conformance)} checks: {n['pass']} pass, "
                + (f"**{bad} fail**" if bad else "0 fail")
                + f", {n['xfail']} known gap{'' if n['xfail'] == 1 else 's'} (declared, "
                f"expected to fail), {n['skip']} skipped"
            )
        elif zoo:
            parts.append(
                "the conformance suite is not in these results (`harness run` runs it unless "
                "--no-parity)"
            )
        out.append("**Parity:** " + "; ".join(parts) + ".")
    seen: set[Any] = set()
    for model, verdict, summary, _ in _pair_verdicts(results):
        seen.add(model)
        out.append(f"**Parity of {model} against its reference:** {verdict} ({summary}).")
    said: set[tuple[Any, str]] = set()
    statuses = _user_parity(results)
    for row in _rows(results):
        case, status = _extra(row).get("case"), statuses.get(id(_extra(row)))
        if status is None or case in seen or (case, status) in said:
            continue
        said.add((case, status))
        out.append(f"**Parity of {case}{_USER_VERDICT.get(status, f':** {status}.')}")
    return out


#: The verdict's line on a user model's parity where its run holds no verdict block, after
#: "**Parity of NAME".
_USER_VERDICT = {
    "pass": " against its reference:** PASS (`harness_check` in the pytest session that "
    "stored it).",
    "FAIL": " against its reference:** **FAIL** (`harness_check` failed in the pytest session "
    "that stored it; its output has the evidence).",
    "not run": ":** not run (`harness run --no-parity`; without it `harness run --model M "
    "--reference R` checks the pair).",
    "not recorded": ":** not recorded in these results (no `harness_check` of this model in "
    "the pytest session that stored them; `harness check --model M --reference R` checks it).",
    "unchecked": ":** not checked (no reference model; `harness run --model M --reference "
    "R.skops` checks it).",
}


def _speed_verdict(results: Sequence[ResultFile], speedups: _Speedups) -> list[str]:
    """ONNX engines against scikit-learn, per batch band: faster, slower or undecided (the
    95% interval holds 1x)."""
    by_series, _ = _series(results)
    cells: list[tuple[str, str, int, _Speedup]] = []
    for (case, series), per_batch in sorted(by_series.items()):
        for batch, row in sorted(per_batch.items()):
            found = speedups.get(id(row))
            if found is not None and str(_extra(row).get("engine", "")).startswith("onnx"):
                cells.append((case, series, batch, found))
    if not cells:
        return []
    with_ci = all(c[3].low is not None for c in cells)
    how = (
        "a cell counts as faster or slower when its 95% interval excludes 1x"
        if with_ci
        else "by the median; cells without raw samples have no interval"
    )
    parts = []
    for low, high, label in _BANDS:
        band = [c for c in cells if c[2] >= low and (high is None or c[2] <= high)]
        if not band:
            continue
        sides = Counter(c[3].side for c in band)
        values = sorted(c[3].value for c in band)
        text = f"{label}: faster in {sides['faster']} of {len(band)} cells"
        if sides["slower"]:
            text += f", **slower in {sides['slower']}**"
        if sides["undecided"]:
            text += f", too close to call in {sides['undecided']}"
        text += f" (speed-ups {_fmt_ratio(values[0])}x to {_fmt_ratio(values[-1])}x)"
        engines = sorted({c[1].split("@")[0].split(" ")[0] for c in band})
        if len(engines) > 1:  # where exporters differ, say which is which
            each = []
            for engine in engines:
                mine = [c for c in band if c[1].split("@")[0].split(" ")[0] == engine]
                faster = sum(c[3].side == "faster" for c in mine)
                each.append(f"{engine} {faster} of {len(mine)}")
            text += "; faster by engine: " + ", ".join(each)
        parts.append(f"\n  - {text}")
    against, slower_than = _reference(results) or ("the reference", "the reference")
    out = [f"**ONNX against {against}** (median latency, same run and threads; {how}):"]
    out[0] += "".join(parts)
    slower = sorted((c for c in cells if c[3].side == "slower"), key=lambda c: c[3].value)
    if slower:
        shown = [f"{case} {series} at batch {b:,}: {s.text()}" for case, series, b, s in slower]
        if len(shown) > 8:
            shown = [*shown[:7], f"and {len(shown) - 7} more (▼ in the speed-up table)"]
        where = " (the interval below 1x)" if with_ci else ""
        out.append(f"**Slower than {slower_than}**{where}:" + "".join(f"\n  - {s}" for s in shown))
    return out


def _skipped_provider(test_id: str) -> str | None:
    """The provider a skipped benchmark id asked for: ``case[onnx-native-cuda]-b1-t1``."""
    found = re.search(r"\[([^\]]*)\]", test_id)
    if found is None:
        return None
    last = found[1].rsplit("-", 1)[-1]
    return last if last in _PROVIDERS else None


def _provider_verdict(results: Sequence[ResultFile]) -> list[str]:
    """Providers that ran (onnxruntime's own report of the active provider), those asked for
    that did not and why (the run's skip reasons), and those not asked for."""
    harness = [r for r in results if not r.plain]
    if not harness:
        return []
    asked: set[str] = set()
    ran: Counter[str] = Counter()
    instead: Counter[tuple[str, str]] = Counter()
    skips: dict[str, Counter[str]] = defaultdict(Counter)
    seen_skips = set()
    for result in harness:
        if result.harness.get("provider"):
            asked.add(str(result.harness["provider"]))
        for row in result.benchmarks:
            e = _extra(row)
            requested = e.get("provider_requested")
            if requested in (None, "-"):
                continue
            asked.add(str(requested))
            active = _provider(str(e.get("provider_active") or "?").split("+")[0])
            ran[active] += 1
            if active != requested:
                instead[(str(requested), active)] += 1
        for skip in result.harness.get("skipped", []):
            provider = _skipped_provider(str(skip.get("id", "")))
            if provider is None or (skip.get("id"), skip.get("reason")) in seen_skips:
                continue
            seen_skips.add((skip.get("id"), skip.get("reason")))
            asked.add(provider)
            skips[provider][str(skip.get("reason"))] += 1
    conformance = [row for result in harness for row in result.harness.get("conformance", [])]
    gpu_checks: dict[str, Counter[str]] = defaultdict(Counter)
    for row in conformance:
        if "@" in str(row.get("engine")):
            provider = str(row["engine"]).rsplit("@", 1)[1]
            status = str(row.get("status"))
            gpu_checks[provider][
                f"{status}: {row.get('message')}" if status == "skip" else status
            ] += 1
    parts = []
    if ran:
        parts += [
            f"ran {p} ({n} ONNX benchmark{'s' if n > 1 else ''})" for p, n in sorted(ran.items())
        ]
    else:
        parts.append("no ONNX benchmark ran (scikit-learn only)")
    for (requested, active), n in sorted(instead.items()):
        parts.append(f"**{requested} was asked for but {active} ran** in {n} benchmarks")
    for provider in sorted(asked - set(ran)):
        reasons = skips.get(provider)
        if reasons:
            why = "; ".join(
                f"{reason} ({n} benchmark{'s' if n > 1 else ''} skipped)"
                for reason, n in reasons.most_common()
            )
        else:
            why = "no benchmark of it is in these results"
        parts.append(f"**{provider} was asked for and did not run**: {why}")
    for provider, statuses in sorted(gpu_checks.items()):
        text = "; ".join(f"{n} {s}" for s, n in statuses.items())
        parts.append(f"parity checks on {provider}: {text}")
    missing = [p for p in _PROVIDERS if p not in asked]
    if missing:
        parts.append(
            f"not asked for: {', '.join(missing)} (`harness run --providers "
            f"{','.join(_PROVIDERS)}` asks for all; `harness providers` lists what "
            "this machine can run)"
        )
    return ["**Providers:**" + "".join(f"\n  - {p}" for p in parts)]
