"""Run the benchmarks (all, some, or none) and regenerate BENCHMARKS.md from what is recorded.

Every benchmark records its results, with the machine they were measured on, in
``benchmarks/recorded/<name>.json``. This script writes ``BENCHMARKS.md`` from whatever is recorded
there, so a section can be re-measured on its own and the page regenerated without re-running the
rest.

Usage:
    python benchmarks/run_all.py                          # regenerate BENCHMARKS.md only
    python benchmarks/run_all.py --run step_time meta_test_time --note "machine busy"
    python benchmarks/run_all.py --run notebooks          # times every notebook (minutes; quiet machine)
"""

from __future__ import annotations

import argparse
import statistics

import flop_floor
import lanes
import make_models
import meta_test_time
import notebook_times
import remedies_time
import step_time
from common import ROOT, record, recorded

BENCHMARKS = {"step_time": step_time, "meta_test_time": meta_test_time, "flop_floor": flop_floor, "lanes": lanes,
              "remedies_time": remedies_time, "notebooks": notebook_times, "make_models": make_models}


def machine_line(result: dict) -> str:
    m = result["machine"]
    load = m.get("load_average_1_5_15_min") or []
    load_text = f"; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)" if load else ""
    note = f"\n\n*Note: {result['note']}*" if result.get("note") else ""
    threads = m["torch_threads"]
    threads_text = f"{threads} torch thread(s)" if isinstance(threads, int) else threads
    switches = m.get("kernel_switches") or {}
    forced = f", forced kernels {' '.join(f'{k}={v}' for k, v in switches.items())}" if switches else ""
    build = (f" (CPU capability {m['cpu_capability']}; BLAS: {_short(m['blas'])}; {_short(m['onednn'])}{forced})"
             if m.get("cpu_capability") else "")
    return (f"Measured {m['date']} on {m['cpu']}, {m['usable_cores']} usable cores of {m['cores']}{load_text}; "
            f"Python {m['python']}, torch {m['torch']}{build}, {threads_text}.{note}")


def _short(build: str) -> str:
    """A library's build line without its vendor boilerplate: 'MKL 2024.2', 'oneDNN v3.12.0'."""
    if "Math Kernel Library Version" in build:
        return "MKL " + build.split("Version", 1)[1].split("-")[0].strip()
    if "MKL-DNN" in build or "oneDNN" in build:
        return "oneDNN " + build.split()[-4 if "Git Hash" in build else -1].strip("()")
    return build.split(",")[0]


def step_time_section(result: dict | None) -> list[str]:
    lines = ["## Meta-training step time", ""]
    if result is None:
        return lines + ["Not measured yet: `python benchmarks/run_all.py --run step_time`.", ""]
    s = result["settings"]
    lines += [
        machine_line(result), "",
        f"One meta-iteration: {s['meta_batch']} tasks of {s['dataset']} ({s['n_way']}-way {s['k_shot']}-shot, "
        f"{s['n_query']} queries per class), {s['inner_steps']} second-order inner steps, {s['model']}. "
        f"The bare loop is written like higher's Omniglot example (`innerloop_ctx(copy_initial_weights=False)`, "
        f"`diffopt.step`, query `backward()`, Adam). {s['rounds']} interleaved rounds of "
        f"{s['meta_iterations_per_round']} meta-iterations per variant, in one process; medians.",
        "",
        "| variant | median s / meta-iteration | ratio to the bare loop (medians) | ratio (median of paired rounds) |",
        "| --- | --- | --- | --- |",
    ]
    summary = result["summary"]
    for name, v in summary.items():
        lines.append(f"| {name} | {v['median_s']:.3f} | {v['ratio_of_medians']:.3f} | "
                     f"{v['median_paired_ratio']:.3f} |")
    worst = max(summary[n]["median_paired_ratio"] for n in ("mamlkit, higher", "mamlkit, torch.func"))
    verdict = "within" if worst < 1.05 else "above"
    lines += ["", f"mamlkit's largest overhead over the bare loop at the same threads (paired): "
              f"{100 * (worst - 1):+.1f}% ({verdict} the 5% target). The overhead includes what mamlkit does "
              "besides the bare loop: collecting running statistics per task (`collected_stats`), loss and accuracy "
              "history.", ""]
    side = summary.get("mamlkit, higher, 2 tasks side by side")
    if side is not None:
        one, split = summary["mamlkit, higher"], summary["mamlkit, higher, 2 torch threads"]
        same = {True: "the same model bit for bit", False: "**a different model**", None: "not checked"}
        lines += [
            "Both cores in one process (`mk.meta_train(..., threads=2)`; the command line's default where torch has 2 "
            "threads): "
            "two tasks of a meta-batch at a time, each on one torch thread, their meta-gradients added in task "
            f"order. Per meta-iteration **{one['median_s'] / side['median_s']:.2f}x** faster than one task at a time "
            f"at one torch thread and **{split['median_s'] / side['median_s']:.2f}x** faster than one task at a "
            "time at 2 torch threads (each operation split in two; ratios of the medians), and "
            f"{same[result.get('side_by_side_identical')]} as one task at a time at one torch thread (checked in "
            "this run; `tests/test_adapt.py` checks it for every kind of model and meta-training).", ""]
    return lines


def meta_test_section(result: dict | None) -> list[str]:
    lines = ["## Meta-test time", ""]
    if result is None:
        return lines + ["Not measured yet: `python benchmarks/run_all.py --run meta_test_time`.", ""]
    s = result["settings"]
    lines += [
        machine_line(result), "",
        f"Per task: adapt a copy of the model ({s['model']}) to one {s['dataset']} task ({s['n_way']}-way "
        f"{s['k_shot']}-shot, {s['n_query']} queries per class) with {s['inner_steps']} inner steps in train "
        f"mode, then predict the query set under `no_grad`. {s['rounds']} interleaved rounds of "
        f"{s['tasks_per_round']} tasks per variant; medians.",
        "",
        "| variant | median s / task | ratio to track_higher_grads=False |",
        "| --- | --- | --- |",
    ]
    for name, v in result["per_task"].items():
        lines.append(f"| {name} | {v['median_s']:.4f} | {v['ratio_of_medians']:.3f} |")
    lines += ["", "`track_higher_grads=True` (higher's default) keeps the graph of every inner step although "
              "nothing back-propagates through it at meta-test; mamlkit uses `False`.", "",
              "The placement table (`mk.meta_test(trained, tasks, mk.PLACEMENTS)`, every meta-test placement on "
              "the same tasks, adapting once per shared adapt mode and statistics source; with higher, the two "
              "train-mode statistics sources also share one adaptation, the collected statistics replayed exactly "
              "(`mamlkit.adapt.can_replay`); the first row asks for `train_then_eval_collected` apart, which is "
              "what every table cost before):", "",
              "| backend | placements | tasks measured | seconds | s / task | 600 tasks (extrapolated) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for backend, t in result["placement_table"].items():
        lines.append(f"| {backend} | {t['placements']} | {t['tasks']} | {t['seconds']:.1f} | "
                     f"{t['seconds_per_task']:.2f} | {t['extrapolated_600_tasks_s']:.0f} s (x {600 // t['tasks']}, "
                     "linear) |")
    lines.append("")
    return lines


def notebooks_section(result: dict | None) -> list[str]:
    lines = ["## Notebooks", ""]
    if result is None:
        return lines + ["Not measured yet: `python benchmarks/run_all.py --run notebooks` (on a quiet machine, with "
                        "the model cache filled by `python -m mamlkit train --preset lesson`).", ""]
    lines += [machine_line(result), "", f"`{result['command']}`; seconds per notebook are the sums of pytest's "
              "per-cell durations (kernel start included); with two workers the suite's wall time is about half "
              "their sum.", "", "| notebook | seconds |", "| --- | --- |"]
    for name, seconds in result["per_notebook_s"].items():
        lines.append(f"| {name} | {seconds:.1f} |")
    status = "passed" if result["passed"] else f"FAILED (exit code {result['exit_code']})"
    lines += [f"| **whole suite (wall time)** | **{result['suite_wall_s']:.1f}** |", "",
              f"Suite {status}: {result['summary_line']}", ""]
    return lines


def endurance_section(result: dict | None) -> list[str]:
    lines = ["## Endurance (memory over a long meta-training run)", ""]
    if result is None:
        return lines + ["Not measured yet: `python benchmarks/endurance.py --iterations 2000`.", ""]
    done, planned = result["iterations_done"], result["iterations_planned"]
    lines += [f"`python benchmarks/endurance.py --iterations {planned}` (quick configuration: glyphs 5-way 1-shot, "
              f"Conv4 with BatchNorm, meta-batch 4, 5 second-order inner steps; {result['threads']} torch thread(s)) "
              f"on {result['machine']}. Iterations done: {done} of {planned}"
              + ("." if result.get("finished") else " (the run was cut short; the file is rewritten as it goes)."),
              "", "| after iteration | peak resident memory (MB) | resident memory then (MB) |", "| --- | --- | --- |"]
    for n, peak in result["peak_rss_mb_after"].items():
        lines.append(f"| {n} | {peak:.1f} | {result['rss_mb_at'][n]:.1f} |")
    end = result.get("after") or result.get("now") or {}
    before = result["before"]
    peaks = result["peak_rss_mb_after"]
    if "200" in peaks and len(peaks) > 1:
        last = list(peaks)[-1]
        growth = peaks[last] - peaks["200"]
        lines += ["", f"Peak after {last} iterations minus peak after 200: {growth:+.1f} MB "
                  f"({100 * growth / peaks['200']:+.2f}%), in {result['seconds']:.0f} s of meta-training."]
    lines += ["", f"Open file descriptors {before['fds']} before, {end.get('fds')} at the end; threads "
              f"{before['threads']} before, {end.get('threads')} at the end.", ""]
    return lines


def flop_floor_section(result: dict | None) -> list[str]:
    lines = ["## Meta-test against its compute floor", ""]
    if result is None:
        return lines + ["Not measured yet: `python benchmarks/run_all.py --run flop_floor`.", ""]
    s = result["settings"]
    lines += [
        machine_line(result), "",
        f"One meta-test task ({s['dataset']}, {s['n_way']}-way {s['k_shot']}-shot, {s['n_query']} queries per "
        f"class, {s['model']}, {s['inner_steps']} inner steps in train mode, the query predicted in train mode) "
        f"pushes {s['inner_steps']} x {s['n_way'] * s['k_shot']} support images forward and backward through "
        f"every layer and {s['n_way'] * s['n_query']} query images forward. The floor of each layer is its "
        "time per example at its best, measured in the same run on a dense large batch of the same layer shape "
        f"(best of batches {', '.join(map(str, s['batches']))}), times the examples one task pushes through it.",
        "",
        "| layer | forward µs / example | backward µs / example | floor ms / task |",
        "| --- | --- | --- | --- |",
    ]
    for p in result["parts"]:
        lines.append(f"| {p['layer']} | {p['forward_us_per_example']:.2f} | {p['backward_us_per_example']:.2f} | "
                     f"{p['floor_ms_per_task']:.2f} |")
    lines += ["", f"**Floor: {1e3 * result['floor_s_per_task']:.1f} ms per task.** Measured "
              f"(`mk.meta_test(model, tasks, \"transductive\")`, {s['rounds']} rounds of {s['tasks_per_round']} "
              "tasks, medians):", "",
              "| backend | ms / task | ratio to the floor |", "| --- | --- | --- |"]
    for backend, t in result["measured_s_per_task"].items():
        lines.append(f"| {backend} | {1e3 * t:.1f} | {result['ratio_to_floor'][backend]:.2f} |")
    lines += ["", "Profile of the measured run (torch.profiler, self CPU time):", "",
              "| op | self time | calls |", "| --- | --- | --- |"]
    for op in result["profile_top_ops"]:
        lines.append(f"| `{op['op']}` | {op['self_percent']:.1f}% | {op['calls']} |")
    pool = next(p for p in result["parts"] if p["layer"].startswith("maxpool 1"))
    conv = next(p for p in result["parts"] if p["layer"].startswith("conv 2"))
    lines += ["", f"The floor takes each op as PyTorch implements it for this layout (NCHW): the first max-pool "
              f"costs {pool['forward_us_per_example']:.0f} µs per example forward even at its best batch, more than "
              f"the convolution after it ({conv['forward_us_per_example']:.0f} µs, "
              f"{conv.get('forward_gflop_per_s', 0):.0f} GFLOP/s). In channels_last the same pooling takes "
              f"{result['maxpool_1_channels_last_forward_us_per_example']:.0f} µs per example, the layout "
              "conversion included (measured in the same run), "
              "but the convolutions then take other kernels and the adapted logits no longer match "
              "NCHW's to the last digit, which would change every recorded table; "
              "mamlkit keeps NCHW so that results stay bit-identical.", ""]
    return lines


def lanes_section(result: dict | None) -> list[str]:
    lines = ["## Both cores: lanes", ""]
    if result is None:
        return lines + ["Not measured yet: `python benchmarks/run_all.py --run lanes`.", ""]
    s = result["settings"]
    lines += [
        machine_line(result), "",
        f"The placement table of {s['dataset']} ({s['trainings']} meta-trainings of {s['iterations']} "
        f"meta-iterations, then {s['tasks']} tasks x {s['placements']} placements on each model), nothing cached, "
        "run by `mk.experiments.run_placements` in one process and in 2 lanes (`lanes=2`: worker processes with "
        "one torch thread each; meta-trainings side by side, then the meta-test tasks split between the lanes).",
        "",
        "| layout | meta-training s | meta-test s | total s |",
        "| --- | --- | --- | --- |",
    ]
    for name, t in result["small_table"].items():
        lines.append(f"| {name} | {t['meta_train_s']:.1f} | {t['meta_test_s']:.1f} | {t['total_s']:.1f} |")
    lines.append("")
    for name, parts in result["speedup_of_2_lanes"].items():
        lines.append(f"2 lanes against {name}: meta-training {parts['meta_train_s']:.2f}x, meta-test "
                     f"{parts['meta_test_s']:.2f}x, total {parts['total_s']:.2f}x faster.")
    same = "identical" if result["identical"] else "NOT identical"
    lines += ["", f"Per-task results of 2 lanes and of one process at one thread: {same}."]
    two = result.get("two_threads")
    if two is not None:
        models = "the same models bit for bit" if two["same_models"] else "**other models**"
        tasks = "identical" if two["same_per_task"] else "**not identical**"
        lines[-1] += (f" One process at 2 threads runs two tasks side by side, each on one torch thread, in "
                      f"meta-training (`mk.meta_train(threads=)`) and in meta-test (`mk.meta_test(threads=)`): "
                      f"{models} as one thread, and per-task results {tasks} to one thread's.")
    lines.append("")
    if "full_table" in result:
        f = result["full_table"]
        same = "identical" if f["same_as_seed0_record"] else "NOT identical"
        when = f" (measured {f['date']})" if "date" in f else ""
        lines += [f"**The README's full table**{when} (`python -m mamlkit placements --dataset glyphs --no-cache`: 300 "
                  f"meta-iterations, 600 tasks x 8 placements, 2 meta-trainings) from scratch in 2 lanes: "
                  f"**{f['wall_s']:.0f} s**; every per-task result {same} to the seed-0 record in "
                  "`data/records/seeds-glyphs.json`."]
        if "meta_train_s" in f:
            lines[-1] += (" Meta-training " + " s and ".join(f"{s:.0f}" for s in f["meta_train_s"].values())
                          + f" s (side by side), meta-test {f['meta_test_lane_s']:.0f} s of lane time.")
        lines.append("")
    return lines


def make_models_section(result: dict | None) -> list[str]:
    lines = ["## `make models` from scratch", ""]
    if result is None:
        return lines + ["Not measured yet: `python benchmarks/run_all.py --run make_models` (minutes).", ""]
    seconds = result["model_seconds"]
    return lines + [
        machine_line(result), "",
        f"Every lesson model the notebooks load, meta-trained now (`MAMLKIT_SHIPPED=0`, an empty cache): "
        f"**{result['wall_s']:.0f} s** wall time for {result['models']} models, {result['cpu_s']:.0f} s of CPU time "
        f"(so {result['cpu_s'] / result['wall_s']:.2f} of the 2 cores busy on average); each model "
        f"{min(seconds)} to {max(seconds)} s as the command line printed it "
        f"(median {statistics.median(seconds):.0f} s). "
        "Where the shipped models match, `make models` takes seconds.", ""] + _make_models_runs(result)


def _make_models_runs(result: dict) -> list[str]:
    if "runs" not in result:
        return []
    one, two = result["runs"]["1"], result["runs"]["2"]
    same = "the same models bit for bit" if result["same_models"] else "**other models**"
    return [f"Its two chains (glyphs, Omniglot) run side by side; at one torch thread each, as before tasks could run "
            f"side by side, the same run took {one['wall_s']:.0f} s ({one['cpu_s']:.0f} s of CPU time); at two "
            f"threads each (the default, `MODEL_THREADS=2`) {two['wall_s']:.0f} s: "
            f"{one['wall_s'] / two['wall_s']:.2f}x faster, {same}. Against one core doing all the work "
            f"({one['cpu_s']:.0f} s of CPU time), both cores make it {one['cpu_s'] / two['wall_s']:.2f}x faster.", ""]


def remedies_section(result: dict | None) -> list[str]:
    lines = ["## What the inner-loop remedies cost in time", ""]
    if result is None:
        return lines + ["Not measured yet: `python benchmarks/run_all.py --run remedies_time`.", ""]
    s = result["settings"]
    lines += [
        machine_line(result), "",
        f"The same Conv4 ({s['model']}) on {s['dataset']}, as the deep dive `inner_loop_remedies` meta-trains it: "
        f"plain MAML, MAML++'s "
        f"per-step BatchNorm, learned inner rates per tensor and step, and ANIL (the classifier adapts alone; "
        f"mamlkit still computes the body's gradients and multiplies them by a rate of 0). Meta-training: "
        f"{s['meta_batch']} tasks per meta-batch, {s['train_inner_steps']} second-order inner steps, "
        f"{s['rounds']} interleaved rounds of {s['meta_iterations_per_round']} meta-iterations. Meta-test: "
        f"`mk.meta_test`, transductive, {s['test_inner_steps']} inner steps, {s['rounds']} interleaved rounds of "
        f"{s['tasks_per_round']} tasks. Medians; ratios are the medians of the paired rounds.",
        "",
        "| variant | s / meta-iteration | x MAML | ms / meta-test task | x MAML |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, tr in result["meta_training"].items():
        te = result["meta_test"][name]
        lines.append(f"| {name} | {tr['median_s']:.3f} | {tr['median_paired_ratio']:.2f} | "
                     f"{1000 * te['median_s']:.1f} | {te['median_paired_ratio']:.2f} |")
    return lines + [""]


def write_report() -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run_all.py` from the results recorded in `benchmarks/recorded/` "
        "(each section names the machine and date it was measured on; re-measure one with "
        "`--run <name>`). These are plain scripts, not timed tests: timings on a shared or busy machine vary "
        "from run to run, so variants are interleaved in one process and compared by medians and ratios. "
        "Where a section says two runs give the same results bit for bit, both ran on the machine it names, with "
        "that torch build (`mamlkit.plumbing.machine`): on another CPU or build the numbers agree within margins, not "
        "bit for bit.",
        "",
    ]
    lines += step_time_section(recorded("step_time"))
    lines += meta_test_section(recorded("meta_test_time"))
    lines += flop_floor_section(recorded("flop_floor"))
    lines += lanes_section(recorded("lanes"))
    lines += make_models_section(recorded("make_models"))
    lines += remedies_section(recorded("remedies_time"))
    lines += notebooks_section(recorded("notebooks"))
    lines += endurance_section(recorded("endurance"))
    text = "\n".join(lines).rstrip() + "\n"
    (ROOT / "BENCHMARKS.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs="*", default=[], choices=list(BENCHMARKS), help="benchmarks to measure first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for step_time and meta_test_time")
    parser.add_argument("--note", default="", help="a note recorded with the results (e.g. 'machine busy')")
    args = parser.parse_args()
    for name in args.run:
        module = BENCHMARKS[name]
        if name == "notebooks":
            result = module.main([])
        elif name == "make_models":
            result = module.main()
        elif name == "lanes":
            result = module.main(full=True)
        else:
            result = module.main(threads=args.threads)
        if args.note:
            result["note"] = args.note
            record(name, result)
        print(module.report(result))
    write_report()
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
