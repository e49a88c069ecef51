"""``cnnzoo eval RUN_DIR|WEIGHTS...``: scores on a dataset split; several runs make an ensemble."""

from __future__ import annotations

import argparse

import json
from pathlib import Path

from ..choices import DATASETS, PRECISIONS, PROGRESS, TTA_MODES, canonical_dataset


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate trained models (several: an ensemble)",
                       description="Top-1, top-5, per-class accuracy and the confusion matrix (PNG and CSV) of a "
                       "trained model on the test split. Several runs are also scored as an ensemble that averages "
                       "their probabilities.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR|WEIGHTS")
    p.add_argument("--data", type=canonical_dataset, choices=DATASETS, metavar="DATA",
                   help="dataset (default: the one the model was trained on): " + " | ".join(DATASETS))
    p.add_argument("--data-dir")
    p.add_argument("--split", choices=["test", "val", "train"], default="test",
                   help="test (default), val (the dataset's own validation split: a folder's val/) or train")
    p.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the run's train.tta)")
    p.add_argument("--batch-size", type=int, help="default: the run's evaluation batch size, else 256")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="default: the run's train.precision (as its own test pass), else auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--output", "-o", help="where to write confusion.png/csv (default: RUN_DIR/eval)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--progress", choices=PROGRESS, default="auto",
                   help="a progress bar on stderr: auto (on a terminal; default), bar (always), none")
    p.set_defaults(func=run)


def run_settings(spec: str) -> dict:
    """What a run's own test pass used (its ``config.yaml``): data, data directory, precision, TTA, batch size,
    memory format. Empty for a weights file, or a run directory without a config."""
    from ..io import RunDir
    from ..train.config import load_config

    run = RunDir(spec)
    if not Path(spec).is_dir() or not run.config.is_file():
        return {}
    cfg = load_config(str(run.config))
    return {"data": cfg.data.name, "data_dir": cfg.data.dir, "precision": cfg.train.precision, "tta": cfg.train.tta,
            "batch_size": cfg.data.eval_batch_size or 2 * cfg.data.batch_size,
            "channels_last": cfg.train.channels_last, "cache": cfg.data.cache, "cache_dir": cfg.data.cache_dir}


def _probs(model, loader, device, tta, amp_dtype, progress="none", desc="evaluating"):
    import torch

    from ..io import Progress
    from ..runtime import autocast
    from ..train.evaluate import predict_logits

    ps, ys = [], []
    with torch.no_grad():
        for x, y in Progress(progress).iterate(loader, desc=desc):
            with autocast(device, amp_dtype):  # as the trainer's test pass (train.evaluate.evaluate)
                ps.append(predict_logits(model, x, tta).exp().cpu())
            ys.append(y.cpu())
    return torch.cat(ps), torch.cat(ys)


def write_confusion(conf, classes, out_dir: Path) -> None:
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "confusion.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\pred", *classes])
        for c, row in zip(classes, conf.tolist()):
            w.writerow([c, *row])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 1.5)), dpi=100)
    norm = conf.double() / conf.sum(1, keepdim=True).clamp_min(1)
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                v = int(conf[i, j])
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title("confusion matrix (row-normalised colour, counts)")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png")
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_dataset, make_loader
    from ..errors import UserError
    from ..io import RunDir
    from ..inference import run_meta
    from ..builder import load_model
    from ..train.evaluate import metrics_from_probs
    from ..runtime import precision_name, resolve_device, resolve_precision

    device = resolve_device(args.device)
    members, all_probs, labels, classes, used = [], [], None, None, []
    for spec in args.runs:
        model, meta = load_model(spec, device)
        rm = run_meta(meta, model)
        own = run_settings(spec)
        recorded = meta.get("data") or own.get("data")
        data = args.data or recorded
        if not data:
            raise UserError(f"{spec} does not say which data it was trained on; pass --data")
        # The run's data directory serves only the run's own dataset.
        same_data = recorded and canonical_dataset(data) == canonical_dataset(recorded)
        data_dir = args.data_dir or (own.get("data_dir") if same_data else None)
        amp_dtype = resolve_precision(args.precision or own.get("precision") or "auto", device, model)
        tta = args.tta or own.get("tta")
        if own.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
        used.append({"precision": precision_name(amp_dtype), "tta": tta})
        ds = load_dataset(data, data_dir)
        split = {"test": ds.test, "val": ds.val, "train": ds.train}[args.split]
        if split is None:
            where = (f" (put its images in {Path(data_dir or '.') / args.split}/<class>/)"
                     if canonical_dataset(data) == "folder" else "")
            raise UserError(f"{data} has no {args.split} split{where}")
        if len(ds.classes) != model.num_classes:
            raise UserError(f"{spec} predicts {model.num_classes} classes but {data} has {len(ds.classes)}")
        loader = make_loader(split, batch_size=args.batch_size or own.get("batch_size") or 256, train=False,
                             image_size=tuple(rm["image_size"]), mean=rm["mean"], std=rm["std"], device=device,
                             in_chans=rm["in_chans"], channels_last=bool(own.get("channels_last")),
                             cache=own.get("cache", True), cache_dir=own.get("cache_dir") if same_data else None)
        probs, y = _probs(model, loader, device, tta, amp_dtype, args.progress, f"{spec} ({args.split})")
        if labels is not None and not torch.equal(labels, y):
            raise UserError("ensemble members must be evaluated on the same data")
        labels, classes = y, list(ds.classes)
        all_probs.append(probs)
        members.append((spec, metrics_from_probs(probs, y, len(classes))))
    report = {"members": [{"run": s, "top1": m["top1"], "top5": m["top5"], "loss": m["loss"], "n": m["n"],
                           **u} for (s, m), u in zip(members, used)]}
    final = members[0][1]
    if len(members) > 1:
        final = metrics_from_probs(torch.stack(all_probs).mean(0), labels, len(classes))
        report["ensemble"] = {"top1": final["top1"], "top5": final["top5"], "loss": final["loss"]}
    report.update(top1=final["top1"], top5=final["top5"], loss=final["loss"], n=final["n"], split=args.split,
                  tta=used[0]["tta"], precision=used[0]["precision"], per_class=dict(zip(classes, final["per_class"])))
    first = Path(args.runs[0])
    out = Path(args.output) if args.output else (RunDir(first).eval_dir if first.is_dir()
                                                  else first.with_name(first.stem + "-eval"))
    write_confusion(final["confusion"], classes, out)
    report["confusion_png"] = str(out / "confusion.png")
    report["confusion_csv"] = str(out / "confusion.csv")
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    for (s, m), u in zip(members, used):
        print(f"{s}: top1 {m['top1']:.4f}  top5 {m['top5']:.4f}  loss {m['loss']:.4f}  ({m['n']:,} images, "
              f"{u['precision']}{', TTA ' + u['tta'] if u['tta'] else ''})")
    if len(members) > 1:
        print(f"ensemble of {len(members)}: top1 {final['top1']:.4f}  top5 {final['top5']:.4f}  loss {final['loss']:.4f}")
    print("per-class accuracy:")
    for c, a in zip(classes, final["per_class"]):
        print(f"  {a:7.2%}  {c}")
    print(f"confusion matrix: {report['confusion_png']}, {report['confusion_csv']}")
    return 0
