"""Re-evaluate 'recovered' / 'start_recovered' of shipped results CSVs after RECOVERY_TOLERANCES
gained scale=False (usage: python rematch_recovered.py FILE.csv ...; see README.md here). A stricter criterion can only turn True into False, so only rows with a
True verdict are re-run (deterministic: same seeds, same code path); every other column must
come out as before (checked on final_loss)."""
import csv, math, multiprocessing, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from xrdcore.experiments import StudyConfig, run_task

def task_of(row, tasks):
    return tasks[row["key"]]

def main(path):
    path = Path(path)
    import json
    values = json.loads(path.with_suffix(".config.json").read_text())
    assert values.pop("remedies", ["none"]) == ["none"]
    config = StudyConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    tasks = {t.key: t for t in config.tasks()}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames
        rows = list(reader)
    redo = [r for r in rows if r["recovered"] == "True" or r["start_recovered"] == "True"]
    controls = [r for r in rows if r not in redo][:4]
    begin = time.time()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        fresh = list(pool.map(run_task, [tasks[r["key"]] for r in redo + controls], [config] * (len(redo) + len(controls)), chunksize=8))
    by_key = {f["key"]: f for f in fresh}
    for r in redo + controls:
        f = by_key[r["key"]]
        old, new = float(r["final_loss"]), float(f["final_loss"])
        assert math.isclose(old, new, rel_tol=1e-9, abs_tol=1e-12), (r["key"], old, new)
        assert str(f["matched"]) == r["matched"], r["key"]
    flipped = 0
    for r in redo:
        f = by_key[r["key"]]
        flipped += (str(f["recovered"]) != r["recovered"]) + (str(f["start_recovered"]) != r["start_recovered"])
        r["recovered"], r["start_recovered"] = str(f["recovered"]), str(f["start_recovered"])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{path}: {len(rows)} rows, re-ran {len(redo)} (+{len(controls)} controls) in {time.time() - begin:.0f} s; {flipped} verdicts flipped to False")

if __name__ == "__main__":
    for p in sys.argv[1:]:
        main(p)
