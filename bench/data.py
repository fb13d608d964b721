"""Dataset validation at scale: Atelier's streamed survey of a JSON lines file against the `datasets`
library loading the same file, in the same run.

On a generated SFT file ({"prompt", "completion"} rows of 20 to 4,000 characters, about 3% of the words
non-ASCII, 0.5% exact and 0.3% near duplicates planted; one schema, so that `datasets` can load it), each
measurement in its own fresh process, so that its peak RSS is its own:
- Atelier's validation: `workers.training.data.survey(path, stats=False)`, the streamed pass that reads
  every line and checks every row against every technique (bad lines, which techniques it fits): what
  the goals are about;
- Atelier's full survey: `data.survey(path)`, the same pass that also counts exact and near duplicates,
  short answers and the commonest answer (what the Data step and the dataset page show);
- the baseline: `datasets.load_dataset("json", data_files=path, split="train", cache_dir=<a fresh
  folder>)`, which parses the file into an Arrow table on disk (pyarrow's JSON reader, its threads);
- Atelier's training-time reading, `data.load(path, "sft")`: a list of every row, so not constant
  memory by design; reported for its speed.
It reports seconds (of the call, after the imports), MB/s, CPU seconds and peak RSS (of the whole
process: the interpreter and imports included), and the goals: the survey's peak RSS <= 200 MB and its
speed >= 0.5x of load_dataset's. The file is read once first, so that both read it from the page cache;
the survey and load_dataset alternate for --repeats, the fastest of each counted.

Then, on a small file with 0.1% broken lines (truncated JSON, bytes that are not UTF-8, a list or a
string for a row, a row without its completion): whether the survey reads on past them and names each,
and what load_dataset does with the same file. Last, the survey of a --profile-mb file under cProfile:
the 15 functions with the most total and cumulative time.

The files are generated once and kept in var/bench/data/ (not in git).

    python bench/data.py [--gb 1.0] [--repeats 2] [--profile-mb 50]      (1 GB: about 10 minutes on 2 cores)
    python bench/data.py --gb 0.05 --repeats 1                            (a quick run)

Prints a table and writes bench/results/data.json (or --out). Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "var" / "bench" / "data"
GENERATOR = 2  # bumped when the rows generated change, so that a cached file is not reused
MB = 2**20
GOALS = {"validate_peak_rss_mb": 200, "validate_speed_over_load_dataset": 0.5}

WORDS = (
    "the a of to and in is that for it as with be on not this are by at from or have an they which one you "
    "were all we when there can been has more if will would what about their out so up into than them only "
    "other new some could time these two may first then do any like my now over such our man me even most "
    "made after also did many before must through back years where much your way well down should because "
    "each just those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three model answer question data training example function value "
    "return list string number error file user system result step loss token prompt completion dataset "
    "summary translate explain write code python test learning rate batch epoch review customer order price"
)
FOREIGN = (
    "café naïve Straße größer über déjà señor año façade privé привет данные модель ответ 日本語 データ "
    "学習 数据集 模型 回答 모델 데이터 ελληνικά μοντέλο مرحبا بيانات שלום 🙂 🚀 ✓ €"
)
PUNCTUATION = (",", ".", "?", "!", ":", ";", "\n", "\n\n", '"', "(", ")", "-", "\\", "\t")
TASKS = (
    "", "", "Summarise the following text:\n\n", "Translate into French: ", "Answer the question: ",
    "Write a Python function that ", "Explain step by step: ", "Review this code:\n```python\n",
)  # fmt: skip


# Generating the files ------------------------------------------------------------------------------------


def _corpus(rng: random.Random, count: int) -> str:
    """Running text to cut rows from: English words, about 3% non-ASCII, punctuation, line breaks."""
    words, foreign = WORDS.split(), FOREIGN.split()
    vocabulary = words + foreign + list(PUNCTUATION)
    weights = [1.0] * len(words) + [0.03 * len(words) / len(foreign)] * len(foreign)
    weights += [0.08 * len(words) / len(PUNCTUATION)] * len(PUNCTUATION)
    return " ".join(rng.choices(vocabulary, weights=weights, k=count))


def _cut(rng: random.Random, corpus: str, low: int, high: int) -> str:
    """A slice of the corpus whose length is log-uniform in [low, high] characters."""
    length = int(math.exp(rng.uniform(math.log(low), math.log(high))))
    start = rng.randrange(len(corpus) - length)
    return corpus[start : start + length].strip() or "ok"


def generate(path: Path, size: int, broken_every: int = 0, seed: int = 0) -> dict[str, Any]:
    """A JSON lines file of SFT rows of about `size` bytes (and a .meta.json beside it saying what was
    planted), unless it is already there. A broken line every `broken_every` rows after the first 1,000
    (those decide the file's encoding and columns, and a reader would rightly reject a file broken there)."""
    meta_path = path.with_suffix(".meta.json")
    if path.exists() and meta_path.exists():
        return dict(json.loads(meta_path.read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)  # noqa: S311 - seeded rows, the same file every time
    corpus = _corpus(rng, 2_000_000)
    recent: list[dict[str, str]] = []  # rows to repeat as duplicates
    varied: set[str] = set()  # prompts of the rows given a near duplicate
    meta: dict[str, Any] = {"rows": 0, "lines": 0, "bytes": 0, "duplicates": 0, "near_duplicates": 0,
            "unreadable": 0, "invalid_rows": 0}  # fmt: skip
    broken = (
        b'{"prompt": "Explain the loss curve", "completion": "It falls',  # truncated
        b'{"prompt": "caf\xe9 au lait", "completion": "latin-1, not UTF-8"}',  # not UTF-8
        b'["a list", "not a row"]',
        b'"a string, not a row"',
        b'{"prompt": "a row without its completion"}',
        b'{"prompt": "an empty completion", "completion": ""}',
    )
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        batch: list[bytes] = []
        while meta["bytes"] < size:
            meta["lines"] += 1
            draw = rng.random()
            if broken_every and meta["lines"] > 1000 and meta["lines"] % broken_every == 0:
                line = broken[(meta["lines"] // broken_every) % len(broken)]
                which = "unreadable" if line.startswith((b"[", b'"')) or b"\xe9" in line or line.endswith(b"falls") else "invalid_rows"  # fmt: skip
                meta[which] += 1
                meta["rows"] += which == "invalid_rows"
            else:
                if recent and draw < 0.005:
                    row = rng.choice(recent)
                    meta["duplicates"] += 1
                elif recent and draw < 0.008:  # the same but for punctuation and white space
                    source = rng.choice(recent)
                    row = {"prompt": source["prompt"] + "  ?", "completion": source["completion"] + "!"}
                    # a second variant of the same row is an exact duplicate of the first
                    meta["duplicates" if source["prompt"] in varied else "near_duplicates"] += 1
                    varied.add(source["prompt"])
                else:
                    prompt = rng.choice(TASKS) + _cut(rng, corpus, 20, 3000)
                    row = {"prompt": prompt, "completion": _cut(rng, corpus, 10, 4000)}
                    if len(recent) < 1000:
                        recent.append(row)
                    else:
                        recent[rng.randrange(1000)] = row
                line = json.dumps(row, ensure_ascii=False).encode()
                meta["rows"] += 1
            batch.append(line + b"\n")
            meta["bytes"] += len(line) + 1
            if len(batch) >= 10_000:
                f.writelines(batch)
                batch.clear()
        f.writelines(batch)
    tmp.rename(path)
    meta["generated_seconds"] = round(time.perf_counter() - started, 1)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# Each measurement, in a fresh process ---------------------------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _where(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename.startswith(str(ROOT)) and ".venv" not in filename:
        filename = str(Path(filename).relative_to(ROOT))
    elif filename != "~":
        filename = "/".join(Path(filename).parts[-2:])
    return f"{filename}:{line}({name})" if filename != "~" else name


def _profile(profiler: Any, count: int = 15) -> dict[str, list[dict[str, Any]]]:
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    entries = [
        {"function": _where(key), "calls": nc, "total_s": round(tt, 3), "cumulative_s": round(ct, 3)}
        for key, (_cc, nc, tt, ct, _callers) in stats.items()
        if not key[0].startswith("<frozen")  # the survey's first imports (numpy): once a process, not a row
    ]
    return {
        "by_total_time": sorted(entries, key=lambda e: -e["total_s"])[:count],
        "by_cumulative_time": sorted(entries, key=lambda e: -e["cumulative_s"])[:count],
    }


def child(mode: str, path: Path, profile: bool) -> dict[str, Any]:
    """One measurement, in this process: its result as a dict."""
    out: dict[str, Any] = {}
    if mode == "datasets":
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        cache = tempfile.mkdtemp(prefix="atelier-bench-hf-")  # fresh, so that load_dataset really parses
        out["rss_after_imports_mb"] = round(_peak_mb(), 1)
        began, cpu = time.perf_counter(), _cpu()
        try:
            loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache)
            out["rows"] = loaded.num_rows
        except Exception as exc:  # noqa: BLE001 - on the broken file the error is the result
            out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            cause = exc.__cause__ or exc.__context__
            if cause is not None:
                out["cause"] = (
                    f"{type(cause).__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''}"
                )
        out["seconds"], out["cpu_seconds"] = time.perf_counter() - began, _cpu() - cpu
        out["peak_rss_mb"] = round(_peak_mb(), 1)
        out["cache_mb"] = round(sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file()) / MB, 1)
        shutil.rmtree(cache, ignore_errors=True)
        return out

    from workers.training import data

    out["rss_after_imports_mb"] = round(_peak_mb(), 1)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    began, cpu = time.perf_counter(), _cpu()
    if mode == "load":
        out["rows"] = len(data.load(path, "sft"))
    else:
        found = data.survey(path, stats=mode == "survey")
        out["rows"], out["lines"], out["engine"] = found.rows, found.lines, found.engine
        out["survey"] = {
            "unreadable_count": found.unreadable_count, "unreadable_first": found.unreadable[:5],
            "checks": {t: {"ok": c["ok"], "good": c["good"], "error_count": c["error_count"],
                           "first_errors": c["errors"][:3], "message": c["message"][:120]}
                       for t, c in found.checks.items()},
            "duplicates": found.duplicates, "near_duplicates": found.near_duplicates,
            "short_count": found.short_count, "top_share": round(found.top_share, 4), "format": found.format,
        }  # fmt: skip
    out["seconds"], out["cpu_seconds"] = time.perf_counter() - began, _cpu() - cpu
    if profiler is not None:
        profiler.disable()
        out["profile"] = _profile(profiler)
    out["peak_rss_mb"] = round(_peak_mb(), 1)
    return out


def measure(mode: str, path: Path, profile: bool = False) -> dict[str, Any]:
    """`mode` on `path` in a fresh Python process; its result, with the file's size and MB/s."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    command = [sys.executable, __file__, "--child", mode, str(path)] + (["--profile"] if profile else [])
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    process = time.perf_counter() - began
    if done.returncode != 0 or not done.stdout.strip():  # a broken reader is a result to report, not a crash
        return {"mode": mode, "failed": done.stderr.strip().splitlines()[-5:], "returncode": done.returncode}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    size = path.stat().st_size / MB
    out.update({"mode": mode, "file_mb": round(size, 1), "process_seconds": round(process, 2),
                "seconds": round(out["seconds"], 2), "cpu_seconds": round(out["cpu_seconds"], 2),
                "mb_per_second": round(size / out["seconds"], 1) if "error" not in out else None})  # fmt: skip
    return out


# The run -------------------------------------------------------------------------------------------------


def _row(name: str, r: dict[str, Any]) -> str:
    if "failed" in r:
        return f"{name:<40}failed: {' | '.join(r['failed'])[-200:]}"
    speed = r["mb_per_second"] if r.get("mb_per_second") is not None else "-"
    return (
        f"{name:<40}{r['seconds']:>9}{r['cpu_seconds']:>9}{speed:>9}{r['rss_after_imports_mb']:>14}"
        f"{r['peak_rss_mb']:>14}{r.get('rows', '-'):>11}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gb", type=float, default=1.0, help="size of the generated file (GiB)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile-mb", type=float, default=50)
    parser.add_argument("--broken-mb", type=float, default=20)
    parser.add_argument("--skip-load", action="store_true", help="leave out data.load (a list of every row)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "data.json"))
    parser.add_argument("--child", choices=("validate", "survey", "load", "datasets"), help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.path), args.profile)))
        return 0

    load_before = os.getloadavg()[0]
    print("generating (or reusing) the files in var/bench/data ...", flush=True)
    size = int(args.gb * 2**30)
    clean = CACHE / f"sft-{size // MB}mb-v{GENERATOR}.jsonl"
    planted = generate(clean, size)
    small = CACHE / f"sft-{int(args.profile_mb)}mb-v{GENERATOR}.jsonl"
    generate(small, int(args.profile_mb * MB), seed=1)
    broken = CACHE / f"sft-broken-{int(args.broken_mb)}mb-v{GENERATOR}.jsonl"
    broken_planted = generate(broken, int(args.broken_mb * MB), broken_every=1000, seed=2)

    with clean.open("rb") as f:  # into the page cache, so that neither reader pays the first read
        while f.read(64 * MB):
            pass
    runs: dict[str, list[dict[str, Any]]] = {"validate": [], "survey": [], "datasets": []}
    for repeat in range(args.repeats):  # alternated, so that the machine's drift hits each alike
        for mode in ("validate", "survey", "datasets"):
            print(f"{mode} ({repeat + 1}/{args.repeats}) ...", flush=True)
            runs[mode].append(measure(mode, clean))
    load = None if args.skip_load else measure("load", clean)
    print("the broken file and the profile ...", flush=True)
    broken_survey, broken_datasets = measure("survey", broken), measure("datasets", broken)
    profiled = measure("survey", small, profile=True)

    def best(results: list[dict[str, Any]]) -> dict[str, Any]:
        ok = [r for r in results if "failed" not in r and "error" not in r]
        return min(ok, key=lambda r: r["seconds"]) if ok else results[0]

    validate, survey, baseline = best(runs["validate"]), best(runs["survey"]), best(runs["datasets"])

    def ratio_of(run: dict[str, Any]) -> float | None:
        measured = "failed" not in run and "failed" not in baseline and "error" not in baseline
        return round(baseline["seconds"] / run["seconds"], 3) if measured else None

    ratio, survey_ratio = ratio_of(validate), ratio_of(survey)
    peak = max((r["peak_rss_mb"] for r in runs["validate"] if "peak_rss_mb" in r), default=None)
    survey_peak = max((r["peak_rss_mb"] for r in runs["survey"] if "peak_rss_mb" in r), default=None)
    met = {
        "validate_peak_rss_mb": peak is not None and peak <= GOALS["validate_peak_rss_mb"],
        "validate_speed_over_load_dataset": ratio is not None
        and ratio >= GOALS["validate_speed_over_load_dataset"],
    }
    found = survey.get("survey", {})
    broken_found = broken_survey.get("survey", {})
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "python": platform.python_version(), "datasets": _version("datasets"), "pyarrow": _version("pyarrow"),
        "file": {"name": clean.name, "mb": round(clean.stat().st_size / MB, 1), **planted},
        "repeats": args.repeats, "runs": runs,
        "best": {"validate": validate, "survey": survey, "load_dataset": baseline},
        "load_list_not_constant_memory": load,
        "ratio_validate_speed_over_load_dataset": ratio, "validate_peak_rss_mb": peak,
        "ratio_survey_speed_over_load_dataset": survey_ratio, "survey_peak_rss_mb": survey_peak,
        "goals": GOALS, "goals_met": met,
        "rows_agree": survey.get("rows") == baseline.get("rows") == planted["rows"],
        "duplicates_found_planted": [found.get("duplicates"), planted["duplicates"]],
        "near_duplicates_found_planted": [found.get("near_duplicates"), planted["near_duplicates"]],
        "broken_file": {
            "name": broken.name, "mb": round(broken.stat().st_size / MB, 1), "planted": broken_planted,
            "survey": broken_survey, "load_dataset": broken_datasets,
        },
        "profile": {"file_mb": profiled.get("file_mb"), "seconds_profiled": profiled.get("seconds"),
                    **profiled.pop("profile", {})},
    }  # fmt: skip

    print()
    print(
        f"{clean.name}: {result['file']['mb']} MB, {planted['rows']:,} rows; warm page cache; best of {args.repeats}"
    )
    print(
        f"{'reader':<40}{'seconds':>9}{'cpu s':>9}{'MB/s':>9}{'imports MB':>14}{'peak RSS MB':>14}{'rows':>11}"
    )
    print(_row("atelier validation (survey, checks)", validate))
    print(_row("atelier survey (+ duplicates, answers)", survey))
    print(_row("datasets.load_dataset (baseline)", baseline))
    if load is not None:
        print(_row("atelier data.load (a list, by design)", load))
    print(
        f"validation / load_dataset speed: {ratio}x (goal >= 0.5: {'met' if met['validate_speed_over_load_dataset'] else 'NOT met'}); "
        f"validation peak RSS {peak} MB (goal <= 200: {'met' if met['validate_peak_rss_mb'] else 'NOT met'}); "
        f"full survey: {survey_ratio}x, peak RSS {survey_peak} MB (no goal: reported)"
    )
    print(
        f"rows agree: {result['rows_agree']}; duplicates found/planted {found.get('duplicates')}/{planted['duplicates']}, "
        f"near {found.get('near_duplicates')}/{planted['near_duplicates']}"
    )
    sft = broken_found.get("checks", {}).get("sft", {})
    print(
        f"{broken.name} ({broken_planted['unreadable']} unreadable lines and {broken_planted['invalid_rows']} invalid rows planted): "
        + (
            f"survey read on: {broken_found.get('unreadable_count')} unreadable, {broken_survey.get('rows'):,} rows, "
            f"SFT {sft.get('good'):,} good and {sft.get('error_count')} named bad; "
            if "failed" not in broken_survey
            else f"survey failed: {broken_survey['failed']}; "
        )
        + f"load_dataset: {broken_datasets.get('cause') or broken_datasets.get('error') or 'loaded ' + str(broken_datasets.get('rows')) + ' rows'}"
    )
    print(
        f"\nsurvey of {small.name} under cProfile ({result['profile']['seconds_profiled']} s), by total time:"
    )
    print(f"{'function':<72}{'calls':>10}{'total s':>9}{'cum s':>9}")
    for e in result["profile"].get("by_total_time", []):
        print(f"{e['function'][-71:]:<72}{e['calls']:>10}{e['total_s']:>9}{e['cumulative_s']:>9}")
    print("by cumulative time:")
    for e in result["profile"].get("by_cumulative_time", []):
        print(f"{e['function'][-71:]:<72}{e['calls']:>10}{e['total_s']:>9}{e['cumulative_s']:>9}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    raise SystemExit(main())
