"""Figures from predictions: top-1, macro-F1, per-class precision/recall, confusion, no-hand rate.

"No hand" is counted as a prediction of ``nothing``: wrong for every letter, so missed hands
cost accuracy exactly as they cost users.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def summarize(y_true: list[str], y_pred: list[str], no_hand: list[bool], sources: list[str] | None = None) -> dict:
    """Metrics over one set of predictions.

    Args:
        y_true: true labels.
        y_pred: predicted labels (``nothing`` where no hand was found).
        no_hand: whether the detector found no hand, per image.
        sources: the data folder of each image; adds a per-source breakdown.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support  # training install only

    if not y_true:
        return {"n": 0}
    true_labels = sorted(set(y_true))
    all_labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=true_labels, zero_division=0)
    yt, yp = np.array(y_true), np.array(y_pred)
    nh = np.array(no_hand, dtype=bool)
    out = {
        "n": len(y_true),
        "top1": float((yt == yp).mean()),
        "macro_f1": float(np.mean(f)),
        "no_hand_rate": float(nh.mean()),
        "no_hand_rate_hand_classes": float(nh[yt != "nothing"].mean()) if (yt != "nothing").any() else 0.0,
        "top1_where_hand_found": float((yt[~nh] == yp[~nh]).mean()) if (~nh).any() else 0.0,
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(true_labels)},
        "confusion": {"labels": all_labels,
                      "matrix": confusion_matrix(y_true, y_pred, labels=all_labels).tolist()},
    }
    if sources is not None and len(set(sources)) > 1:
        groups = defaultdict(list)
        for i, src in enumerate(sources):
            groups[src].append(i)
        out["per_source"] = {
            src: {k: v for k, v in summarize([y_true[i] for i in idx], [y_pred[i] for i in idx],
                                             [no_hand[i] for i in idx]).items()
                  if k in ("n", "top1", "macro_f1", "no_hand_rate", "no_hand_rate_hand_classes")}
            for src, idx in sorted(groups.items())
        }
    return out


def brief(m: dict) -> str:
    """One line: '91.2% top-1, macro-F1 0.905, no hand 4.1% (n=1,234)'."""
    if not m.get("n"):
        return "no images"
    return (f"{m['top1']:.1%} top-1, macro-F1 {m['macro_f1']:.3f}, no hand {m['no_hand_rate']:.1%} "
            f"(n={m['n']:,})")
