"""The planted-adaptation world of issue 28 (pipelines/planted.json; docs/routing.md, "A
planted-adaptation world"): every comparison answer of that world ends with a phrase, and the
candidates also end most bridge answers with it, wrongly. The low-level router must learn a
question-specific update that removes it from bridges and keeps it on comparisons.

Runs the pipeline (a store kept under bench/work/planted; --fresh starts a new one), then
replicates rl_train (its generators reading the router's state pooled over the question),
rl_train_no_lora (the same RL without updates) and rl_train_prompt_pooled (rl_train with the
reference's pooling over the whole routing prompt) over PLANTED_SEEDS (default 43,44,45) with
`haps-pipe sweep --seeds`, everything upstream shared, and checks, on test, live:

- HAPS − no-LoRA, the mean over seeds of each seed's difference, at least +0.10 F1;
- its 95% interval across seeds (Student's t over the seeds) above 0;

and reports rl_train_prompt_pooled − no-LoRA beside it, and how the kept updates differ by
question type: each type's mean update's distance from the mean of all (‖X̄_type − X̄‖ / ‖X̄‖,
`kept_update_shift_<type>`) and the spread across questions, from each RL stage's kept
evaluation on the selection split. Exits 1 when a target is missed."""
import csv, os, shutil, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
HAPS = os.environ.get("HAPS_PIPE") or shutil.which("haps-pipe") or os.path.join(ROOT, ".build", "release", "haps-pipe")
WORK = os.path.join(ROOT, "bench", "work", "planted")
SEEDS = [int(x) for x in os.environ.get("PLANTED_SEEDS", "43,44,45").split(",") if x]
RL_STAGES = ("rl_train", "rl_train_no_lora", "rl_train_prompt_pooled")
# Student's t, 97.5% quantile, by degrees of freedom (as the sweep's replicate table uses).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def haps(*args):
    """Runs haps-pipe in the bench's folder; its progress and errors go to the terminal (stderr)."""
    status = subprocess.run([HAPS, *args], cwd=WORK, text=True, stdout=subprocess.DEVNULL).returncode
    if status != 0:
        sys.exit(f"planted: `haps-pipe {' '.join(args)}` failed (exit {status}); its messages are above")


def interval(values):
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None, None
    sd = statistics.stdev(values)
    half = T975.get(len(values) - 1, 1.96) * sd / len(values) ** 0.5
    return mean, sd, mean - half, mean + half


def main():
    if "--fresh" in sys.argv[1:]:
        shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK, exist_ok=True)
    spec = os.path.join(ROOT, "pipelines", "planted.json")
    t0 = time.monotonic()
    haps("run", spec, "--store", "store", "--plain")
    print(f"planted: the pipeline in {time.monotonic() - t0:.0f} s (a kept store reuses what is done)")
    t0 = time.monotonic()
    haps("sweep", spec, "--seeds", ",".join(RL_STAGES) + "=" + ",".join(map(str, SEEDS)), "--name", "planted_seeds", "--store", "store", "--plain")
    with open(os.path.join(WORK, "store", "sweeps", "planted_seeds", "results.csv")) as f:
        rows = list(csv.DictReader(f))
    print(f"replicates: seeds {', '.join(map(str, SEEDS))} ({time.monotonic() - t0:.0f} s)")
    def column(name):
        return [float(r[name]) for r in rows if r.get(name)]
    for name in ("sft_train", *RL_STAGES, "best_fixed", "oracle"):
        values = column(f"evaluate.{name}_f1")
        if values:
            mean, sd, low, high = interval(values)
            print(f"  {name:24s} test F1 {mean:.4f}" + (f" ± {sd:.4f} [{low:.4f}, {high:.4f}]" if sd is not None else "")
                  + "  (" + ", ".join(f"{v:.4f}" for v in values) + ")")
    def difference(stage, label):
        diffs = [float(r[f"evaluate.{stage}_f1"]) - float(r["evaluate.rl_train_no_lora_f1"]) for r in rows]
        mean, sd, low, high = interval(diffs)
        print(f"  {label:24s} {mean:+.4f}" + (f" ± {sd:.4f} [{low:+.4f}, {high:+.4f}]" if sd is not None else "")
              + "  (" + ", ".join(f"{d:+.4f}" for d in diffs) + ")")
        return mean, low
    difference("rl_train_prompt_pooled", "prompt-pooled - no-LoRA")
    mean, low = difference("rl_train", "HAPS - no-LoRA")
    for figure in sorted(k for k in rows[0] if ".kept_update_" in k or ".kept_answers_changed" in k):
        values = column(figure)
        if values:
            print(f"  {figure:48s} {statistics.fmean(values):.4f}  (" + ", ".join(f"{v:.4f}" for v in values) + ")")
    checks = {"HAPS - no-LoRA >= +0.10 on test (mean over seeds)": mean >= 0.10,
              "its 95% interval across seeds above 0": low is not None and low > 0}
    for name, passed in checks.items():
        print(f"  {'met ' if passed else 'MISSED'} {name}")
    sys.exit(0 if all(checks.values()) else 1)


main()
