"""Reproduce the README's results table in one command: dataset, three arms per seed, table, plot and JSON.

    python scripts/reproduce_results.py --seeds 0 1 2 [--dataset 3dpain-250] [--num-identities 250] \
        [--image-size 112] [--output results/] [--launcher accelerate] [--face-crops none aligned]

1. The dataset: `--dataset` is reused when it is a finished `pain3d generate` folder (its fingerprint, `provenance.py`,
   goes into every result), continued with `--resume` when unfinished, and generated when absent
   (`pain3d generate --num-identities N --image-size S --workers W`).
2. Per face crop and seed, the README's three arms with its COMMON flags (`COMMON` below): the heatmap teacher, the
   RGB baseline and the student distilled from that seed's teacher, each `scripts/train_vitpain.py` /
   `scripts/distill_vitpain.py` as a fresh process (`accelerate launch` with `--launcher accelerate`). Each writes
   `evaluation.json`: its best-on-validation checkpoint evaluated on the test split, as `pain3d evaluate` would.
3. `<output>/results.md` (one table per face crop, the commit and fingerprint under each, the student's gain per
   seed), `<output>/results_<crop>.png` and `<output>/results.json`: the commit (and whether the tree was dirty), the
   dataset fingerprint, package versions, every command run (or reused) with its time, and every run's metrics.

One table holds one commit: the run stops (keeping finished arms) if the checkout's commit changes under it.
Resumable: an arm whose folder already holds an `evaluation.json` of the same commit and dataset fingerprint, made by
the same command, is not re-run (a student is re-run whenever its teacher was). Logs of each run go to
`<output>/logs/`; a progress line is printed every `--progress-every` seconds while one runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from generation.errors import Pain3DError  # noqa: E402
from provenance import ProvenanceError, dataset_fingerprint, git_commit, package_versions  # noqa: E402
import results_table  # noqa: E402

SCRIPTS = Path(__file__).resolve().parent
# The README's COMMON flags (docs/training_results.md), less the dataset and image size this script fills in.
COMMON = {"hidden_size": 96, "num_layers": 4, "num_heads": 3, "head_hidden_size": 128, "max_steps": 600,
          "eval_steps": 100, "per_device_train_batch_size": 32, "learning_rate": 5e-4, "augment": "false",
          "max_train_samples": 1000}
FACE_CROPS = ("none", "aligned")
STATE_FILE = "run_commands.json"
ACCELERATE_DEFAULT = "--num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no"


@dataclass(frozen=True)
class Arm:
    """One arm of the table: its label (the README's), folder prefix, script and arm-specific flags."""

    label: str
    name: str
    script: str
    flags: tuple[str, ...]


ARMS = (
    Arm("teacher (heatmap)", "teacher", "train_vitpain.py", ("--modality", "heatmap")),
    Arm("RGB baseline", "rgb", "train_vitpain.py", ("--modality", "rgb", "--use_neutral_reference", "true")),
    Arm("distilled student", "student", "distill_vitpain.py",
        ("--init_student_from_teacher", "true", "--token_weight", "8", "--use_neutral_reference", "true")),
)
REFERENCE = "RGB baseline"


class ReproduceError(SystemExit, Pain3DError):
    """A problem the user must fix (wrong dataset folder, failed run): one line, exit status 1."""

    def __init__(self, message: str):
        super().__init__(f"reproduce_results: {message}")


def log(message: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{seconds:02d}s"


def run_logged(argv: list[str], log_path: Path, what: str, progress_every: float) -> float:
    """Run `argv` with its output in `log_path`, printing a progress line (its last output line) every
    `progress_every` seconds; the seconds it took. A failure stops everything with the log's tail."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "wb") as stream:
        stream.write(("$ " + shlex.join(argv) + "\n").encode())
        stream.flush()
        process = subprocess.Popen(argv, stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        next_report = start + progress_every
        while process.poll() is None:
            time.sleep(0.5)
            if time.monotonic() >= next_report:
                next_report += progress_every
                log(f"  {what}: {_duration(time.monotonic() - start)} so far | {_last_line(log_path)}")
    seconds = time.monotonic() - start
    if process.returncode != 0:
        raise ReproduceError(f"{what} failed (exit {process.returncode}) after {_duration(seconds)}: "
                             f"{_last_line(log_path)} (full log: {log_path})")
    return seconds


def _last_line(path: Path, width: int = 140) -> str:
    """The last non-empty line (or progress-bar update) of a log."""
    with open(path, "rb") as stream:
        stream.seek(max(0, path.stat().st_size - 4096))
        tail = stream.read().decode(errors="replace")
    parts = [part.strip() for part in tail.replace("\r", "\n").split("\n") if part.strip()]
    return (parts[-1] if parts else "")[:width]


# ---- the dataset ----------------------------------------------------------------------------------------------------

def _pain3d() -> list[str]:
    found = shutil.which("pain3d")
    return [found] if found else [sys.executable, "-m", "pain3d"]


def prepare_dataset(args, progress_every: float) -> tuple[dict, list[dict]]:
    """Reuse, resume or generate `args.dataset`; its description (path, fingerprint, config, whether it was made
    now) and the commands run."""
    folder = Path(args.dataset)
    config_file = folder / "generation_config.json"
    commands = []
    if folder.exists() and not config_file.is_file():
        raise ReproduceError(f"{folder} exists but was not written by pain3d generate (no generation_config.json): "
                             "pass --dataset with a generated folder or a new path")
    fingerprint = None
    if config_file.is_file():
        config = json.loads(config_file.read_text())["config"]
        for flag, key, wanted in (("--num-identities", "num_identities", args.num_identities),
                                  ("--image-size", "image_size", args.image_size)):
            if wanted is not None and config[key] != wanted:
                raise ReproduceError(f"{folder} holds {config[key]} for {key} but {flag} {wanted} was asked: pass "
                                     "another --dataset folder, or leave the flag out to use this one")
        try:
            fingerprint = dataset_fingerprint(folder)
        except ProvenanceError:
            fingerprint = None  # unfinished: resumed below
        if fingerprint is not None:
            log(f"dataset {folder}: reused (fingerprint {fingerprint[:12]})")
            return {"path": str(folder), "fingerprint": fingerprint, "generated_now": False, "config": config}, []
    argv = [*_pain3d(), "generate", "--output", str(folder),
            "--num-identities", str(args.num_identities or 250), "--image-size", str(args.image_size or 112),
            "--workers", str(args.workers), *shlex.split(args.generate_args)]
    if config_file.is_file():
        argv.append("--resume")
    log(f"dataset {folder}: {'resuming' if '--resume' in argv else 'generating'} ({shlex.join(argv[len(_pain3d()):])})")
    seconds = run_logged(argv, Path(args.output) / "logs" / "generate.log", "generate", progress_every)
    commands.append({"what": "dataset", "argv": argv, "status": "ran", "seconds": round(seconds, 1)})
    fingerprint = dataset_fingerprint(folder)
    log(f"dataset {folder}: generated in {_duration(seconds)} (fingerprint {fingerprint[:12]})")
    config = json.loads(config_file.read_text())["config"]
    return {"path": str(folder), "fingerprint": fingerprint, "generated_now": True, "config": config}, commands


# ---- the arms -------------------------------------------------------------------------------------------------------

def common_flags(args, image_size: int) -> list[str]:
    """The README's COMMON flags for this dataset (with `--max-steps` / `--eval-steps` / `--train-args` applied)."""
    values = {**COMMON, "max_steps": args.max_steps, "eval_steps": args.eval_steps or min(100, args.max_steps)}
    flags = ["--dataset", str(args.dataset), "--image_size", str(image_size)]
    for key, value in values.items():
        flags += [f"--{key}", str(value)]
    return flags + shlex.split(args.train_args)


def launcher(args) -> list[str]:
    if args.launcher == "accelerate":
        found = shutil.which("accelerate")
        if not found:
            raise ReproduceError("--launcher accelerate but no accelerate command is installed: pip install accelerate")
        return [found, "launch", *shlex.split(args.launcher_args or ACCELERATE_DEFAULT)]
    return [sys.executable]


def arm_folder(output: Path, crop: str, arm: Arm, seed: int) -> Path:
    return output / "runs" / crop / f"{arm.name}_s{seed}"


def arm_command(args, arm: Arm, crop: str, seed: int, image_size: int, overwrite: bool) -> list[str]:
    output = Path(args.output)
    argv = [*launcher(args), str(SCRIPTS / arm.script), *common_flags(args, image_size), *arm.flags,
            "--face_crop", crop, "--seed", str(seed), "--output_dir", str(arm_folder(output, crop, arm, seed))]
    if arm.name == "student":
        argv += ["--teacher", str(arm_folder(output, crop, ARMS[0], seed))]
    return argv + (["--overwrite", "true"] if overwrite else [])


def _reusable(folder: Path, commit: str | None, fingerprint: str | None, argv: list[str],
              earlier: dict[str, list[str]]) -> bool:
    """The folder's evaluation is of this commit and dataset, and was made by this command (when one is recorded)."""
    evaluation = folder / "evaluation.json"
    if not evaluation.is_file() or commit is None:
        return False
    origin = json.loads(evaluation.read_text()).get("provenance") or {}
    same_command = earlier.get(str(folder)) in (None, argv)
    return origin.get("commit") == commit and origin.get("dataset_fingerprint") == fingerprint and same_command


def run_arms(args, dataset: dict, origin: dict, earlier: dict, progress_every: float) -> tuple[list[dict], dict]:
    """Every (crop, seed, arm) run or reused; the commands and the evaluations per crop and arm label."""
    output = Path(args.output)
    image_size = dataset["config"]["image_size"]
    plan = [(crop, seed, arm) for crop in args.face_crops for seed in args.seeds for arm in ARMS]
    commands, results, fresh_teachers, times = [], {}, set(), []
    for number, (crop, seed, arm) in enumerate(plan, 1):
        folder = arm_folder(output, crop, arm, seed)
        argv = arm_command(args, arm, crop, seed, image_size, overwrite=False)
        stale_teacher = arm.name == "student" and (crop, seed) in fresh_teachers
        what = f"[{number}/{len(plan)}] {arm.label}, seed {seed}, face crop {crop}"
        if not stale_teacher and _reusable(folder, origin["commit"], dataset["fingerprint"], argv, earlier):
            log(f"{what}: reused {folder}")
            commands.append({"what": what, "argv": argv, "status": "reused", "folder": str(folder)})
        else:
            now = git_commit()["commit"]
            if now != origin["commit"]:  # one table holds one commit: stop before mixing code
                raise ReproduceError(f"the checkout moved from commit {origin['commit']} to {now} during the run; "
                                     f"the finished arms are kept: rerun on a quiet checkout to finish")
            if folder.exists() and any(folder.iterdir()):
                argv = arm_command(args, arm, crop, seed, image_size, overwrite=True)
            left = len(plan) - number + 1
            eta = f", about {_duration(statistics.fmean(times) * left)} left" if times else ""
            log(f"{what}: running{eta}")
            seconds = run_logged(argv, output / "logs" / crop / f"{arm.name}_s{seed}.log", what, progress_every)
            times.append(seconds)
            if arm.name == "teacher":
                fresh_teachers.add((crop, seed))
            commands.append({"what": what, "argv": argv, "status": "ran", "seconds": round(seconds, 1),
                             "folder": str(folder)})
            earlier[str(folder)] = arm_command(args, arm, crop, seed, image_size, overwrite=False)
            (output / STATE_FILE).write_text(json.dumps(earlier, indent=1) + "\n")  # what made each folder
            evaluation = json.loads((folder / "evaluation.json").read_text())
            log(f"{what}: done in {_duration(seconds)}, test PSPI MAE {evaluation['metrics']['pspi_mae']:.3f}")
        results.setdefault(crop, {}).setdefault(arm.label, []).append(
            {**json.loads((folder / "evaluation.json").read_text()), "folder": str(folder)})
    return commands, results


# ---- the report -----------------------------------------------------------------------------------------------------

def seed_gains(arms: dict[str, list[dict]]) -> list[dict]:
    """Per seed: the student's and the baseline's test PSPI MAE and the student's change against the baseline."""
    def by_seed(label):
        return {run["training"]["seed"]: run["metrics"]["pspi_mae"] for run in arms[label]}

    student, baseline = by_seed("distilled student"), by_seed(REFERENCE)
    return [{"seed": seed, "student": student[seed], "baseline": baseline[seed],
             "change": student[seed] / baseline[seed] - 1} for seed in sorted(student) if seed in baseline]


def write_report(args, dataset: dict, origin: dict, commands: list[dict], results: dict, started: float) -> dict:
    output = Path(args.output)
    sections, summary = [], {}
    for crop, arms in results.items():
        table_origin = results_table.common_provenance(arms)
        table = results_table.results_table(arms, REFERENCE)
        plot = results_table.plot_results(arms, output / f"results_{crop}.png")
        gains = seed_gains(arms)
        gain_line = "; ".join(f"seed {g['seed']}: {g['student']:.3f} vs {g['baseline']:.3f} ({g['change']:+.1%})"
                              for g in gains)
        sections.append(f"## Face crop: {crop}\n\n{table}\n\n{results_table.provenance_line(table_origin)}\n\n"
                        f"Distilled student vs RGB baseline, test PSPI MAE per seed: {gain_line}.\n\n"
                        f"![test PSPI MAE and Pearson per arm, one dot per seed]({plot.name})\n")
        summary[crop] = {
            "table": table, "plot": plot.name, "student_vs_baseline": gains,
            "arms": {label: [{"seed": run["training"]["seed"], "folder": run["folder"], "metrics": run["metrics"],
                              "validation_pspi_mae": (run.get("validation") or {}).get("best_pspi_mae")}
                             for run in runs] for label, runs in arms.items()},
        }
    markdown = "# Results\n\n" + "\n".join(sections)
    (output / "results.md").write_text(markdown)
    record = {
        "tool": "scripts/reproduce_results.py",
        "argv": sys.argv[1:] if args.recorded_argv is None else args.recorded_argv,
        "commit": origin["commit"], "dirty": origin["dirty"],
        "dataset": dataset, "versions": package_versions(), "seeds": args.seeds, "face_crops": args.face_crops,
        "commands": commands, "results": summary, "seconds": round(time.monotonic() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (output / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--dataset", help="dataset folder, reused when finished (default 3dpain-N, or 3dpain-N-Spx "
                        "for an image size other than 112)")
    parser.add_argument("--num-identities", type=int, help="identities to generate (default 250; a reused folder "
                        "must match when given)")
    parser.add_argument("--image-size", type=int, help="image side to generate (default 112; a reused folder must "
                        "match when given); the models read the dataset's size")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes for pain3d generate")
    parser.add_argument("--generate-args", default="", help="more pain3d generate flags, e.g. "
                        "'--expressions-per-identity 2'")
    parser.add_argument("--output", default="results", help="folder of the runs, logs, table, plot and JSON")
    parser.add_argument("--launcher", choices=("python", "accelerate"), default="python",
                        help="run each arm as `python script` or `accelerate launch script`")
    parser.add_argument("--launcher-args", help=f"accelerate launch flags (default '{ACCELERATE_DEFAULT}'; on GPUs "
                        "e.g. '--multi_gpu --num_processes 4')")
    parser.add_argument("--face-crops", nargs="+", choices=FACE_CROPS, default=["aligned"],
                        help="face crops to report, one table each: aligned (the recipe's, the crop real photos get; "
                        "default) and/or none (whole renders)")
    parser.add_argument("--max-steps", type=int, default=COMMON["max_steps"], help="training steps per arm")
    parser.add_argument("--eval-steps", type=int, help="steps between validations (default min(100, max steps))")
    parser.add_argument("--train-args", default="", help="more flags for every arm, after COMMON (they win), e.g. "
                        "'--hidden_size 32 --max_train_samples 100'")
    parser.add_argument("--progress-every", type=float, default=60.0, help="seconds between progress lines")
    args = parser.parse_args(argv)
    args.recorded_argv = argv
    if args.dataset is None:
        n, size = args.num_identities or 250, args.image_size or 112
        args.dataset = f"3dpain-{n}" + ("" if size == 112 else f"-{size}px")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {args.seeds} repeats a seed")
    return args


def main(argv: list[str] | None = None) -> dict:
    started = time.monotonic()
    args = parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    origin = git_commit()
    if origin["commit"] is None:
        log("warning: not a git checkout: results cannot name their code, and no arm can be reused")
    elif origin["dirty"]:
        log(f"warning: commit {origin['commit'][:12]} has uncommitted changes: the results record it as dirty")
    state = output / STATE_FILE  # the command that made each run folder: a changed command re-runs its arm
    earlier = json.loads(state.read_text()) if state.is_file() else {}
    dataset, commands = prepare_dataset(args, args.progress_every)
    arm_commands, results = run_arms(args, dataset, origin, earlier, args.progress_every)
    record = write_report(args, dataset, origin, commands + arm_commands, results, started)
    log(f"wrote {output / 'results.md'}, {output / 'results.json'} in {_duration(record['seconds'])}")
    print((output / "results.md").read_text())
    return record


if __name__ == "__main__":
    try:
        main()
    except (ReproduceError, results_table.MixedProvenanceError) as error:
        print(error, file=sys.stderr)
        sys.exit(2)
