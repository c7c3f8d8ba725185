"""The audit of a deletion request, for two readers: a clinician (what changed in accuracy,
sensitivity and risk, per class, with intervals; whether it was released) and a data-protection
officer (what was forgotten, by which method, the evidence that the images can no longer be
told from unseen ones and how strong it is, what was purged, the ledger record and how to check
it). Written as audit.json (everything), audit.md and audit.html (Jinja2, figures embedded,
printable to PDF), in plain language."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape

from medunlearn.analyses.plots import grid_figure, panels
from medunlearn.analyses.tables import fmt
from medunlearn.store import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from medunlearn.deletion.deployment import Deployment
    from medunlearn.deletion.requests import Closure

# what each measure of the audit means, in plain words (the audit names no acronym unexplained)
MEASURES = (
    (
        "ta",
        "Accuracy on unseen test images",
        "share of images the model never trained on that it classifies correctly",
        "%",
    ),
    (
        "tbac",
        "Balanced accuracy on unseen test images",
        "accuracy averaged over the classes, so that a rare class counts as much as a common one",
        "%",
    ),
    (
        "sensitivity",
        "Sensitivity",
        "share of positive (malignant / abnormal) test cases the model finds",
        "%",
    ),
    (
        "fnr",
        "Missed positive cases",
        "share of positive test cases the model misses (the false-negative rate)",
        "%",
    ),
    (
        "risk_2",
        "Clinical risk",
        "cost of the model's errors on test when a missed positive costs 20 false alarms (Global Risk II)",
        "",
    ),
    (
        "ece",
        "Calibration error",
        "how far the model's confidence is from how often it is right",
        "%",
    ),
    (
        "forget_accuracy",
        "Accuracy on the forgotten images",
        "how well the model still recognises the images it was asked to forget",
        "%",
    ),
    (
        "pop_phi_matched_auc",
        "Attack score on the forgotten images",
        "how well an attacker tells the forgotten images from unseen images of the same classes: 0.5 is a coin toss",
        "",
    ),
)


def verdict(check: dict) -> str:
    """A gate check in words: which way the measure moved, by how much, its interval, and
    whether that stays within the margin fixed in advance."""
    change, low, high = check["change"], check["low"], check["high"]
    direction = "improved" if change > 0 else "worsened" if change < 0 else "did not change"
    amount = f" by {abs(change):.2f}" if change else ""
    interval = f"95% interval of the change {low:+.2f} to {high:+.2f}"
    if check["passed"]:
        ruling = f"even at worst it stays within the {check['margin']:g} allowed"
    else:
        ruling = (
            f"it may have worsened by up to {-low:.2f}, more than the {check['margin']:g} allowed"
        )
    return f"{check['label']} {direction}{amount} ({interval}): {ruling}."


def _image(figure: Figure) -> str:
    """A figure as a base64 PNG for embedding."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _value(columns: dict, key: str) -> float | None:
    """A measure of a model's evidence (the accuracy on the forgotten images is 100 - UA)."""
    if key == "forget_accuracy":
        return None if columns.get("ua") is None else 100.0 - columns["ua"]
    return columns.get(key)


def _measure_rows(before: dict, after: dict) -> list[dict]:
    """The clinician's table: each measure before and after, with its plain meaning."""
    rows = []
    for key, name, meaning, unit in MEASURES:
        old, new = _value(before, key), _value(after, key)
        if old is None and new is None:
            continue
        change = None if old is None or new is None else new - old
        rows.append({"name": name, "meaning": meaning, "before": fmt(old), "after": fmt(new),
                     "change": fmt(change, signed=True), "unit": unit})  # fmt: skip
    return rows


def _class_rows(before: dict, after: dict, names: list[str]) -> list[dict]:
    """Test accuracy within each class, before and after."""
    rows = []
    for c, name in enumerate(names):
        old, new = before.get(f"ta_c{c}"), after.get(f"ta_c{c}")
        if old is None and new is None:
            continue
        change = None if old is None or new is None else new - old
        rows.append({"name": name, "before": fmt(old), "after": fmt(new),
                     "change": fmt(change, signed=True)})  # fmt: skip
    return rows


def _changes_figure(gate: dict) -> Figure:
    """Each gate measure's change with its interval against its margin (left of the dashed line:
    beyond what is allowed)."""
    checks = gate["checks"]
    figure = grid_figure(1, 1, 6.0, 0.5 + 0.45 * len(checks))
    (axes,) = panels(figure, 1, 1)[0]
    for y, check in enumerate(checks):
        colour = "tab:green" if check["passed"] else "tab:red"
        axes.errorbar(check["change"], y, xerr=[[check["change"] - check["low"]],
                                                [check["high"] - check["change"]]],
                      fmt="o", color=colour, capsize=3)  # fmt: skip
        axes.plot([-check["margin"]] * 2, [y - 0.35, y + 0.35], color="black", linestyle="--")
    axes.axvline(0, color="0.7", linewidth=0.8)
    axes.set_yticks(range(len(checks)), [c["label"] for c in checks], fontsize=8)
    axes.set_xlabel("change after the deletion (positive: better); dashed: the most allowed loss")
    axes.grid(axis="x", alpha=0.3)
    return figure


def _evidence_figure(before: dict, after: dict) -> Figure:
    """The attack score on the forgotten images before and after, with their intervals, against
    chance (0.5)."""
    figure = grid_figure(1, 1, 5.0, 2.0)
    (axes,) = panels(figure, 1, 1)[0]
    for y, columns in enumerate((before, after)):
        auc = columns.get("pop_phi_matched_auc")
        if auc is None:
            continue
        # a forget set too small for an interval (one image per class) has the point alone
        low = columns.get("pop_phi_matched_auc_low")
        high = columns.get("pop_phi_matched_auc_high")
        spread = None if low is None or high is None else [[auc - low], [high - auc]]
        axes.errorbar(auc, y, xerr=spread, fmt="o", capsize=3)
    axes.axvline(0.5, color="black", linestyle="--", linewidth=1)
    axes.set_yticks([0, 1], ["before", "after"])
    axes.set_xlim(0.3, 1.0)
    axes.set_xlabel("attack score (AUC): 0.5 = cannot tell the forgotten images from unseen ones")
    axes.grid(axis="x", alpha=0.3)
    return figure


def _attempt(attempt: dict | None) -> dict | None:
    """A failed first attempt in words: its gate checks and criteria that did not pass."""
    if attempt is None:
        return None
    failed = [verdict(c) for c in attempt["gate"]["checks"] if not c["passed"]]
    failed += [f"{c['label']}: {c['value']:.3f}, more than the {c['bound']:.3f} the protocol "
               "allows" for c in attempt.get("criteria", []) if not c["passed"]]  # fmt: skip
    return {**attempt, "failed": failed}


def _exact_words(sharding: dict | None) -> str:
    """Why an exact deletion holds nothing of the images: trained again without them, whole
    or (SISA) the shards that held them."""
    if not sharding:
        return ("This deletion is exact: the model was trained again from scratch without these "
                "images, so it holds nothing learned from them.")  # fmt: skip
    return (
        f"This deletion is exact: the model is {sharding['shards']} models trained on disjoint "
        f"shards of the data, and the {sharding['shards_retrained']} shard(s) that held these "
        "images were trained again without them, from the checkpoint saved before the first "
        "slice of data that held one; the other shards never saw them. The result is the model "
        "trained from the start without these images (medunlearn's tests prove it bit for bit), "
        f"so it holds nothing learned from them. It redid {sharding['retrain_share']:.0%} of "
        "the training's work."
    )


def document(deployment: Deployment, record: dict, closure: Closure) -> dict:
    """Everything the audit shows, from the request's ledger record (never a patient id)."""
    evidence = record["evidence"]
    before, after = evidence["before"], evidence["after"]
    gate = record["gate"]
    exact = record["exact"]
    return {
        "title": f"Deletion request {record['request']}",
        "dataset": deployment.session.dataset.name,
        "record": record,
        "decision": record["decision"],
        "exact": exact,
        "method": record["method"],
        "params": record["params"],
        "attempt": _attempt(record.get("attempt")),
        "forgotten": {
            "images": record["n_images"],
            "patients": record["n_patients"],
            "duplicates": record["n_duplicates"],
            "neighbours": record["n_neighbours"],
            "neighbours_forgotten": record["neighbours_forgotten"],
            "test_duplicates": record["test_duplicates"],
        },
        "measures": _measure_rows(before, after),
        "classes": _class_rows(before, after, deployment.session.dataset.label_names),
        "gate": [{**check, "words": verdict(check)} for check in gate["checks"]],
        "released": gate["released"],
        "criteria": evidence["criteria"],
        "debt": record.get("debt"),
        "reference": record.get("reference"),
        "purged": record["purged"],
        "kept": record["kept"],
        "figures": {
            "changes": _image(_changes_figure(gate)),
            "evidence": _image(_evidence_figure(before, after)),
        },
        "strength": (
            _exact_words(record.get("sharding"))
            if exact
            else "This deletion is approximate: the evidence below shows that the images can no longer be "
            "told from unseen ones by the attacks run, which is evidence, not proof (a model's "
            "closeness to one never trained on them can be imitated); the ledger records which "
            "algorithm ran on which data, and an exact retrain is the only proof."
        ),
        "verify": f"medunlearn ledger verify {deployment.folder}",
    }


def _environment() -> Environment:
    """Jinja2 with the package's templates, HTML escaped."""
    return Environment(loader=PackageLoader("medunlearn.deletion", "templates"),
                       autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)  # fmt: skip


def write(folder: Path, doc: dict) -> None:
    """audit.json, audit.md and audit.html in `folder` (each written atomically)."""
    environment = _environment()
    plain = {k: v for k, v in doc.items() if k != "figures"}
    atomic_write_json(folder / "audit.json", plain)
    atomic_write_text(folder / "audit.md", environment.get_template("audit.md").render(**doc))
    atomic_write_text(folder / "audit.html", environment.get_template("audit.html").render(**doc))
