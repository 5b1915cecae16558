"""The validation report as one self-contained HTML file (every picture an inline base64 PNG).

What a person looks at: the verdict and the parity table; a confusion matrix per format; accuracy per
class side by side; thumbnails of the test images on which an export and the Keras model give different
answers (both answers under each); and, when the reference model sits in a training run folder, the
training curves and the dataset pictures of the seed notebook (sample digits with their labels, the count
per class). Figures come from ``edgekit.toolkit.plots``.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import numpy as np

from edgekit.export.validation_report import ArtifactResult, ValidationReport, write_report_file
from edgekit.runtime.contract import LABELS
from edgekit.toolkit import plots

MAX_THUMBNAILS = 60  # per artifact; a broken export disagrees on thousands
THUMB_SCALE = 3  # 28 px -> 84 px, nearest neighbour
SAMPLE_DIGITS = 40  # the seed's grid of training digits
SAMPLE_SEED = 0


def write_html(report: ValidationReport, path: str | os.PathLike, mnist=None) -> Path:
    """Write the report atomically; ``mnist`` (a loaded ``Mnist``) adds the training set's pictures."""
    return write_report_file(path, render_html(report, mnist))


def render_html(report: ValidationReport, mnist=None) -> str:
    rows = [report.reference] + report.artifacts
    sections = [
        _header(report),
        _section("Parity", _parity_table(report) + _legend(report)),
        _section("Confusion matrices", _confusions(report, rows)),
        _section("Accuracy per class", _per_class(report, rows)),
        _section("Where an export and Keras disagree", _disagreements(report)),
    ]
    if report.layers:
        sections.append(_section("Where the int8 error comes from", _layers(report)))
    run = report.run_dir
    if run is not None:
        sections.append(_section(f"Training run <code>{_e(str(run))}</code>", _training(run)))
        if mnist is not None:
            sections.append(_section("The training data", _dataset(mnist)))
    verdict = "PASS" if report.passed else "FAIL"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>edgekit validate — {verdict}</title>"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{_CSS}</style></head>\n"
        "<body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


# --- sections -----------------------------------------------------------------------------------------

def _header(report: ValidationReport) -> str:
    n = len(report.artifacts)
    verdict = (
        f"<p class=\"verdict pass\">✓ parity holds — {n} of {n} exports within the thresholds</p>"
        if report.passed
        else f"<p class=\"verdict fail\">✗ parity failed — {len(report.failures)} of {n} exports: "
        + ", ".join(f"<code>{_e(a.name)}</code>" for a in report.failures) + "</p>"
    )
    facts = [
        ("reference", f"<code>{_e(report.reference_path)}</code> (sha256 {_e(report.reference_sha256[:16])}…)"),
        ("exports", f"<code>{_e(report.export_dir)}</code>"),
        ("data", f"<code>{_e(report.data_source)}</code>, {len(report.labels):,} test images"),
        ("created", _e(report.created)),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return f"<header><h1>edgekit validate</h1>{verdict}<dl>{dl}</dl></header>"


def _parity_table(report: ValidationReport) -> str:
    head = ("artifact", "format", "quantization", "size MB", "accuracy", "Δ accuracy (points)", "top-1 agreement",
            "max |Δp|", "latency p50 ms", "latency p95 ms", "images/s", "status")
    out = ["<table class=\"parity\"><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, a in enumerate([report.reference] + report.artifacts):
        ref = i == 0
        status = "reference" if ref else ("✓" if a.passed else "✗ " + _e("; ".join(a.reasons)))
        cls = "ref" if ref else ("pass" if a.passed else "fail")
        cells = [
            f"<code>{_e(a.name)}</code>", _e(a.format), _e(a.quantization), f"{a.size_mb:.2f}", f"{a.accuracy:.2f} %",
            "—" if ref else f"{a.delta_accuracy:+.2f}", "—" if ref else f"{a.agreement:.2f} %",
            "—" if ref else (f"{a.max_abs_diff:.1e}" if np.isfinite(a.max_abs_diff) else "inf"),
            f"{a.latency_p50_ms:.2f}", f"{a.latency_p95_ms:.2f}", f"{a.throughput:,.0f}",
        ]
        title = "" if ref else f" title=\"checked: {_e(a.checked)}\""
        out.append(f"<tr class=\"{cls}\">" + "".join(f"<td>{c}</td>" for c in cells)
                   + f"<td class=\"status\"{title}>{status}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _legend(report: ValidationReport) -> str:
    t = report.thresholds
    items = [
        f"float32 (TFLite, ONNX): the same top-1 answer as Keras on ≥ {t.float_min_agreement:g} % of images and "
        f"max |Δ probability| ≤ {t.float_max_abs_diff:g}",
        f"float16: top-1 agreement with Keras ≥ {t.float16_min_agreement:g} %",
        f"dynamic-range and int8: accuracy at most {t.quantized_max_drop:g} points below Keras",
        "latency: one image per call through the edgekit runtime; images/s: batches through the same runtime",
    ]
    notes = "".join(f"<li class=\"note\">{_e(n)}</li>" for n in report.notes)
    return "<ul class=\"legend\">" + "".join(f"<li>{_e(i)}</li>" for i in items) + notes + "</ul>"


def _layers(report: ValidationReport) -> str:
    from edgekit.export.layer_error import COLUMNS, cells

    out = ["<p>Each int8 op's output, dequantized, against the float model's on the same calibration images. "
           "Own: the op alone, fed the float model's input to it — the error born in this layer; the other two: "
           "the error reaching this output through the int8 layers before it (cumulative). RMSE/range: relative "
           "to the float tensor's range; steps: RMSE divided by the int8 scale. The op with the largest own error "
           "is highlighted.</p>"]
    for table in report.layers:
        worst = table.worst
        folded = f" — exported from the {_e(', '.join(table.rewrites))} rewrite" if table.rewrites else ""
        out.append(f"<h3><code>{_e(table.artifact)}</code>{folded}, {table.images} images</h3>")
        out.append("<table class=\"layers\"><thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in COLUMNS) + "</tr></thead><tbody>")
        for row in table.rows:
            cls = " class=\"worse\"" if row is worst else ""
            out.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in cells(row)) + "</tr>")
        out.append("</tbody></table>")
    return "".join(out)


def _confusions(report: ValidationReport, rows: list[ArtifactResult]) -> str:
    figures = []
    for a in rows:
        names = _names(report)
        matrix = plots.confusion_matrix(report.labels, a.predictions, len(names))
        png = plots.confusion_png(matrix, labels=names, title=f"{a.name} — {a.accuracy:.2f} %")
        figures.append(_figure(png, f"{a.name} ({a.format}, {a.quantization})", "confusion"))
    return "<div class=\"grid\">" + "".join(figures) + "</div>"


def _per_class(report: ValidationReport, rows: list[ArtifactResult]) -> str:
    names = _names(report)
    support = np.bincount(report.labels, minlength=len(names))[:len(names)]
    per_row = [plots.per_class_accuracy(plots.confusion_matrix(report.labels, a.predictions, len(names))) for a in rows]
    reference = per_row[0]
    head = f"<tr><th>{'class' if report.class_names else 'digit'}</th><th>images</th>" + "".join(f"<th><code>{_e(a.name)}</code></th>" for a in rows) + "</tr>"
    body = []
    for k in range(len(names)):
        cells = []
        for j, accs in enumerate(per_row):
            value = accs[k]
            if value is None:
                cells.append("<td>—</td>")
                continue
            worse = j > 0 and reference[k] is not None and value < reference[k]
            cells.append(f"<td class=\"{'worse' if worse else ''}\">{100 * value:.2f} %</td>")
        body.append(f"<tr><th>{_e(names[k])}</th><td>{int(support[k]):,}</td>" + "".join(cells) + "</tr>")
    return (f"<p>Share of each {'class' if report.class_names else 'digit'}'s test images answered right; red where an export is below Keras.</p>"
            f"<table class=\"perclass\"><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")


def _disagreements(report: ValidationReport) -> str:
    ref = report.reference
    parts = []
    for a in report.artifacts:
        where = np.flatnonzero(a.predictions != ref.predictions)
        title = f"<h3><code>{_e(a.name)}</code> ({_e(a.quantization)}) — {len(where):,} image(s)</h3>"
        if not len(where):
            parts.append(title + "<p class=\"none\">Same answer as Keras on every image.</p>")
            continue
        # What the export lost first (Keras right, export wrong), then what it gained, then both wrong.
        lost = ref.predictions[where] == report.labels[where]
        gained = a.predictions[where] == report.labels[where]
        order = np.argsort(np.where(lost, 0, np.where(gained, 1, 2)), kind="stable")
        shown = where[order][:MAX_THUMBNAILS]
        counts = f"{int(lost.sum())} lost, {int(gained.sum())} gained, {int((~lost & ~gained).sum())} wrong either way"
        more = f"<p>{counts}" + (f"; {len(shown)} shown, lost first." if len(where) > len(shown) else ".") + "</p>"
        thumbs = []
        for i in shown:
            names = _names(report)
            y, r, p = (names[int(v)] for v in (report.labels[i], ref.predictions[i], a.predictions[i]))
            caption = (f"#{i} label {y}<br><span class=\"{'ok' if r == y else 'bad'}\">Keras {r} "
                       f"({100 * float(ref.confidence[i]):.0f} %)</span><br>"
                       f"<span class=\"{'ok' if p == y else 'bad'}\">{_e(a.quantization)} {p} "
                       f"({100 * float(a.confidence[i]):.0f} %)</span>")
            thumbs.append(f"<figure class=\"thumb\">{_img(_thumbnail(report.images[i]), f'test image {i}')}"
                          f"<figcaption>{caption}</figcaption></figure>")
        parts.append(title + more + "<div class=\"thumbs\">" + "".join(thumbs) + "</div>")
    return ("<p>Each test image on which an export's answer differs from the Keras model's, with both answers "
            "and their confidence (green: right, red: wrong).</p>" + "".join(parts))


def _training(run: Path) -> str:
    parts = []
    curves = run / "curves.png"
    history = run / "history.json"
    if curves.is_file():
        parts.append(_figure(curves.read_bytes(), "loss and accuracy per epoch (curves.png)", "curves"))
    elif history.is_file():
        try:
            data = json.loads(history.read_text(encoding="utf-8"))
            series = data.get("history", data) if isinstance(data, dict) else {}
            parts.append(_figure(plots.curves_png(series), "loss and accuracy per epoch (history.json)", "curves"))
        except (ValueError, TypeError, AttributeError):
            parts.append(f"<p>{_e(str(history))} could not be read.</p>")
    metrics = run / "metrics.json"
    if metrics.is_file():
        try:
            m = json.loads(metrics.read_text(encoding="utf-8"))
            flat = {}
            for k, v in (m.items() if isinstance(m, dict) else ()):  # scalars, and one level of nesting (test.accuracy)
                inner = v.items() if isinstance(v, dict) else [("", v)]
                flat.update({f"{k}.{ik}" if ik else k: iv for ik, iv in inner if isinstance(iv, (int, float, str))})
            if flat:
                parts.append("<table class=\"facts\">" + "".join(
                    f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in flat.items()) + "</table>")
        except ValueError:
            pass
    return "".join(parts) or "<p>No curves in the run folder.</p>"


def _dataset(mnist) -> str:
    rng = np.random.default_rng(SAMPLE_SEED)
    pick = np.sort(rng.choice(len(mnist.x_train), size=min(SAMPLE_DIGITS, len(mnist.x_train)), replace=False))
    grid = plots.samples_png(mnist.x_train[pick], mnist.y_train[pick], columns=10,
                             title="Training digits and their labels")
    counts = plots.class_counts_png(mnist.y_train, title=f"Training images per class ({len(mnist.y_train):,})")
    return ("<div class=\"grid\">" + _figure(grid, "random training digits with their labels", "samples")
            + _figure(counts, "how many training images each digit has", "counts") + "</div>")


# --- HTML helpers -------------------------------------------------------------------------------------

def _names(report: ValidationReport) -> list[str]:
    """The class names: an image model's labels, or the digits."""
    return list(report.class_names) or list(LABELS)


def _thumbnail(image: np.ndarray) -> bytes:
    import cv2

    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3:  # an image model's colour picture, in RGB (ValidationReport.images); PNG wants BGR
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    big = cv2.resize(image, None, fx=THUMB_SCALE, fy=THUMB_SCALE, interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".png", big)
    if not ok:  # pragma: no cover - encoding a valid uint8 array does not fail
        raise RuntimeError("could not encode a thumbnail as PNG")
    return buf.tobytes()


def _img(png: bytes, alt: str) -> str:
    return f"<img src=\"data:image/png;base64,{base64.b64encode(png).decode('ascii')}\" alt=\"{_e(alt)}\">"


def _figure(png: bytes, caption: str, cls: str) -> str:
    return f"<figure class=\"{cls}\">{_img(png, caption)}<figcaption>{_e(caption)}</figcaption></figure>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{title}</h2>{body}</section>"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1280px;padding:0 16px;color:#1d2330}
h1{margin:0 0 6px}h2{border-bottom:1px solid #dde;padding-bottom:4px;margin-top:32px}h3{margin:18px 0 6px;font-size:15px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace}
.verdict{font-size:18px;font-weight:600;padding:8px 12px;border-radius:6px;display:inline-block}
.verdict.pass{background:#e5f6e8;color:#17692b}.verdict.fail{background:#fde8e8;color:#a11a1a}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:10px 0}dt{color:#667}dd{margin:0}
table{border-collapse:collapse;margin:8px 0}th,td{padding:4px 8px;border-bottom:1px solid #e6e8ef;text-align:right;white-space:nowrap}
th{background:#f4f6fa;font-weight:600;white-space:normal;vertical-align:bottom}
table.parity{font-size:13px}td:first-child,th:first-child{text-align:left}
table.parity td.status{text-align:left;white-space:normal;max-width:360px}
tr.pass td.status{color:#17692b;font-weight:600}tr.fail td{background:#fff4f4}tr.fail td.status{color:#a11a1a;font-weight:600}
tr.ref td{color:#445;background:#fafbfd}
td.worse,tr.worse td{color:#a11a1a;font-weight:600}
ul.legend{color:#556;margin:6px 0 0 18px;padding:0}li.note{color:#8a5a00}
.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figure img{display:block;max-width:100%}
figure.confusion img{width:400px}figure.samples img{width:660px}figure.curves img{width:560px}figure.counts img{width:520px}figcaption{font-size:12px;color:#556;text-align:center}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}figure.thumb{width:96px;border:1px solid #e3e5ec;border-radius:4px;padding:4px}
figure.thumb img{width:84px;height:84px;image-rendering:pixelated;margin:0 auto}figure.thumb figcaption{font-size:11px;line-height:1.3}
.ok{color:#17692b}.bad{color:#a11a1a}p.none{color:#17692b}
table.facts th{text-align:left}
"""
