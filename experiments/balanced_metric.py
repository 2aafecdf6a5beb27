"""Benchmark: what `data.metric=balanced_accuracy` buys on unbalanced training data.

    python experiments/balanced_metric.py                      # ~15 min on 2 cores
    python experiments/balanced_metric.py --seeds 0 --epochs 1 # a quick look

Fashion-MNIST's training images made unbalanced, as a user's defect or product folders often are: three classes
(`--rare`, default Pullover, Coat and Shirt, the three most often confused with each other) keep `--rare-share` of
their images (default 5%: about 270 each against 5,400 for the others), in the training and the validation split
alike. The test split stays as it is, 1,000 images per class, so on it plain accuracy and balanced accuracy are the
same number: what a user gets on data where every class matters equally.

One hand-made model (`--family`, default convformer-M of nas/families.py) is trained from scratch with the project's
final-training recipe (`final_train=default`, `--epochs` epochs) twice per seed: with `data.metric=accuracy` (plain
cross-entropy) and with `data.metric=balanced_accuracy` (class-weighted cross-entropy, `nas.train.class_weights`),
through `nas.train.train_candidate` as a search's final training does. Reported per run: the val score as the run's
metric sees it, test accuracy, the rare classes' mean test accuracy and the weakest class.

Writes experiments/results/<name>.json and <name>.md (name: balanced_metric unless --name).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from _common import command_line, compose_run, one_line_on_failed_write, write_results  # noqa: E402  (puts the project on sys.path)


def unbalanced(split, rare: list[int], share: float, *, seed: int):
    """`split` with only `share` of the images of the `rare` classes kept (a seeded draw per class)."""
    import torch

    from nas.data import Split

    gen = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(int(split.y.max()) + 1):
        idx = torch.nonzero(split.y == c).flatten()
        if c in rare:
            idx = idx[torch.randperm(len(idx), generator=gen)[: max(1, round(share * len(idx)))]].sort().values
        keep.append(idx)
    keep = torch.cat(keep).sort().values
    return Split(split.x[keep], split.y[keep])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rare", nargs="+", default=["Pullover", "Coat", "Shirt"], help="classes made rare")
    ap.add_argument("--rare-share", type=float, default=0.05, help="share of a rare class's images kept")
    ap.add_argument("--family", default="convformer-M", help="the model trained (nas/families.py)")
    ap.add_argument("--epochs", type=int, default=6, help="final-training epochs (final_train=default has 6)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--name", default="balanced_metric", help="results file stem under experiments/results/")
    args = ap.parse_args(argv)

    from nas.config import Metric
    from nas.data import channel_stats, load_dataset
    from nas.families import family_arch
    from nas.latency.measure import machine_info
    from nas.model import build_model
    from nas.train import accuracy, per_class_accuracy, seed_everything, train_candidate
    from compress.export import torch_logits

    run = compose_run("hw=edge_npu", "final_train=default", f"final_train.epochs={args.epochs}")
    full = load_dataset(run.data)
    rare = [full.classes.index(name) for name in args.rare]
    train, val = (unbalanced(s, rare, args.rare_share, seed=i) for i, s in enumerate((full.train, full.val)))
    mean, std = channel_stats(train.x)
    base = dataclasses.replace(full, train=train, val=val, mean=mean, std=std)
    arch = family_arch(args.family, in_chans=full.in_chans, img_size=full.img_size, num_classes=full.num_classes)
    started = time.perf_counter()
    rows = []
    for seed in args.seeds:
        for metric in (Metric.accuracy, Metric.balanced_accuracy):
            data = dataclasses.replace(base, metric=metric)
            seed_everything(seed)
            model = build_model(arch)
            model.set_normalization(data.mean, data.std)
            result = train_candidate(model, data, run.final_train, augment=run.data, seed=seed)
            logits = torch_logits(model.eval(), data.test, batch_size=run.train.eval_batch_size)
            per_class = per_class_accuracy(logits, data.test, data.classes)
            weakest = min(per_class, key=lambda c: per_class[c])
            rows.append({"seed": seed, "metric": metric.value, "val_score": result.val_acc,
                         "test_acc": accuracy(logits, data.test), "rare_test_acc": statistics.mean(per_class[c] for c in args.rare),
                         "weakest_class": weakest, "weakest_test_acc": per_class[weakest], "test_acc_per_class": per_class,
                         "train_seconds": result.seconds})
            print(f"seed {seed} {metric.value}: test {rows[-1]['test_acc']:.4f}, rare classes {rows[-1]['rare_test_acc']:.4f}, "
                  f"weakest {weakest} {per_class[weakest]:.4f} ({result.seconds:.0f} s)", flush=True)
    counts = {"train": [int((train.y == c).sum()) for c in range(full.num_classes)],
              "val": [int((val.y == c).sum()) for c in range(full.num_classes)],
              "test": [int((full.test.y == c).sum()) for c in range(full.num_classes)]}
    result = {"command": command_line("balanced_metric.py", argv), "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
              "seconds": time.perf_counter() - started, "family": args.family, "arch": arch.summary(), "epochs": args.epochs,
              "rare": args.rare, "rare_share": args.rare_share, "classes": list(full.classes), "images_per_class": counts,
              "rows": rows}
    write_results(args.name, result, render_md=render)
    return 0


def render(r: dict) -> str:
    rows = r["rows"]
    n = r["images_per_class"]
    rare_train = [n["train"][r["classes"].index(c)] for c in r["rare"]]
    lines = [
        "# Balanced accuracy on unbalanced training data (data.metric)", "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']}; {r['date']}; total {r['seconds'] / 60:.1f} min", "",
        f"Fashion-MNIST with {', '.join(r['rare'])} kept at {100 * r['rare_share']:g}% of their training and validation images "
        f"({min(rare_train):,}-{max(rare_train):,} training images each, against {max(n['train']):,} for the largest class; "
        f"{sum(n['train']):,} training and {sum(n['val']):,} validation images in all). The test split is Fashion-MNIST's "
        f"own, {min(n['test']):,} images per class, so its accuracy is also its balanced accuracy.", "",
        f"Model: {r['family']} (`{r['arch']}`), trained from scratch with `final_train=default` for {r['epochs']} epochs "
        "through `nas.train.train_candidate`; `accuracy`: plain cross-entropy, `balanced_accuracy`: class-weighted "
        "cross-entropy. Val score: as the run's metric scores it (plain or balanced accuracy on the unbalanced val split).", "",
        "| seed | data.metric | val score | test accuracy | rare classes' test accuracy | weakest class | train s |",
        "|--:|---|--:|--:|--:|---|--:|",
    ]
    for row in rows:
        lines.append(f"| {row['seed']} | {row['metric']} | {100 * row['val_score']:.2f}% | {100 * row['test_acc']:.2f}% | "
                     f"{100 * row['rare_test_acc']:.2f}% | {row['weakest_class']} {100 * row['weakest_test_acc']:.2f}% | "
                     f"{row['train_seconds']:.0f} |")
    lines += ["", "## Findings", ""]
    by = {m: [x for x in rows if x["metric"] == m] for m in ("accuracy", "balanced_accuracy")}
    if all(by.values()):
        def mean(m: str, key: str) -> float:
            return 100 * statistics.mean(x[key] for x in by[m])

        pairs = list(zip(by["accuracy"], by["balanced_accuracy"]))
        gains = [100 * (b["test_acc"] - a["test_acc"]) for a, b in pairs]
        rare_gains = [100 * (b["rare_test_acc"] - a["rare_test_acc"]) for a, b in pairs]
        lines += [
            f"- Test accuracy (every class counts the same): {mean('accuracy', 'test_acc'):.2f}% with plain accuracy, "
            f"{mean('balanced_accuracy', 'test_acc'):.2f}% with balanced_accuracy (mean of {len(pairs)} seed(s); per seed "
            f"{', '.join(f'{g:+.2f}' for g in gains)} pt).",
            f"- The rare classes' test accuracy: {mean('accuracy', 'rare_test_acc'):.2f}% against "
            f"{mean('balanced_accuracy', 'rare_test_acc'):.2f}% (per seed {', '.join(f'{g:+.2f}' for g in rare_gains)} pt).",
            *[f"- The val score a search ranks by, with data.metric={m}: {mean(m, 'val_score'):.2f}% on the unbalanced val "
              f"split, {mean(m, 'val_score') - mean(m, 'test_acc'):+.2f} pt from the same models' test accuracy."
              for m in by],
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with one_line_on_failed_write():
        raise SystemExit(main())
