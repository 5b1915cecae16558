"""edgekit.export: one module per target format, quantization, parity validation (TensorFlow imported lazily).

``export_model(model_path, out_dir, ExportOptions(formats=..., quantizations=..., ...))`` (or the same fields as
keywords: ``export_model(model_path, out_dir, formats="onnx")``) checks every option against the format table
(``formats.py``) before any work starts, loads the Keras model with
``safe_mode=True``, then produces each artifact through its format's ``export`` (found in ``EXPORTERS``).

All-or-nothing: artifacts are staged in a hidden folder inside ``out_dir`` and only renamed into place,
followed by ``manifest.json`` (atomically), once every requested artifact has been produced and re-read by its
runtime. A converter failure or Ctrl-C removes the staging folder, so the output folder is left as it was.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from edgekit.export.formats import FORMATS, Quantization, Target, plan
from edgekit.export.manifest import MANIFEST_NAME, Artifact, Manifest, merge, read_manifest, write_manifest
from edgekit.export.options import ExportContext, ExportOptions
from edgekit.runtime.errors import EdgekitError, ExportError, ModelLoadError, OptionsError, first_line

__all__ = ["export_model", "input_contract", "Artifact", "Manifest", "ExportOptions", "Quantization", "FORMATS", "plan", "load_keras_model",
           "MANIFEST_NAME", "EXPORTERS"]


def _tflite_export(*a, **kw):
    from edgekit.export import tflite

    return tflite.export(*a, **kw)


def _onnx_export(*a, **kw):
    from edgekit.export import onnx

    return onnx.export(*a, **kw)


# One small table: format name -> that format's export(model, out, quantization, context) -> (inputs, outputs).
EXPORTERS: dict[str, Callable] = {"tflite": _tflite_export, "onnx": _onnx_export}


def load_keras_model(model_path: str | os.PathLike):
    """Load a ``.keras`` file with ``safe_mode=True`` and check it is an image classifier edgekit exports (one image
    input H x W x C with C = 1 or 3, one output of N class scores; ``model_spec.inspect``)."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file; pass --model RUN/model.keras (train one with edgekit train)")
    if path.suffix != ".keras":
        raise ModelLoadError(f"{path}: not a .keras file; edgekit exports Keras 3 models saved as .keras")
    from edgekit.export.keras_model import load_keras
    from edgekit.export.model_spec import inspect

    model = load_keras(path, "pass a .keras image classifier (edgekit train writes RUN/model.keras)")
    inspect(model, path)
    return model


def input_contract(model, model_path, options: ExportOptions):
    """(contract, spec, images): the model's input contract from what it shows and ``options.input``, its facts,
    and the user's labelled images (an ``ImageSet``, or None for a digit model or when no data was given)."""
    from edgekit.export.image_data import class_folders, load_images
    from edgekit.export.input_options import read_labels
    from edgekit.export.model_spec import contract_for, inspect

    spec = inspect(model, model_path)
    o = options.input
    labels = read_labels(o.labels) if o.labels is not None else None
    image_model = (o.crop or ("digit" if spec.is_digit_shape else "image")) == "image"
    data = Path(options.data).expanduser() if options.data is not None else None
    if image_model and labels is None and data is not None and data.is_dir():
        labels = class_folders(data)
    contract = contract_for(spec, o, labels)
    images = load_images(data, contract) if image_model and data is not None else None
    return contract, spec, images


def export_model(
    model_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ExportOptions | None = None,
    on_artifact: Callable[[Artifact], None] | None = None,
    on_contract: Callable | None = None,
    **fields,
) -> Manifest:
    """Export ``model_path`` to every format x quantization ``options`` names, in ``out_dir``; return the manifest
    written.

    ``options`` is an ``ExportOptions``; instead, its fields may be given as keywords (``formats``,
    ``quantizations``, ``data``, ``calib_samples``, ``opset``, ``fold_bn``, ``input``; see ``ExportOptions`` for each), not
    both. ``on_artifact`` is called with each artifact once it is produced (before the final rename), e.g. to
    print progress; ``on_contract`` with the input contract and the model's facts (``model_spec.ModelSpec``) once
    they are settled, before any conversion. Raises OptionsError, ModelLoadError, DataError or ExportError; never leaves a partial file
    behind.
    """
    from edgekit.export.calibration import load_representative
    from edgekit.runtime.files import sha256_file

    if options is None:
        options = ExportOptions(**fields)
    elif fields:
        raise OptionsError(f"give export_model an ExportOptions or its fields as keywords, not both ({', '.join(fields)})")
    targets = options.targets
    out_dir = Path(out_dir)
    model_path = Path(model_path)
    model = load_keras_model(model_path)
    contract, spec, images = input_contract(model, model_path, options)  # OptionsError/DataError before any work
    if on_contract is not None:
        on_contract(contract, spec)
    source_sha = sha256_file(model_path)
    calibration = None
    if any(t.quantization is Quantization.INT8 for t in targets):
        if contract.crop == "digit":
            calibration = load_representative(options.data, options.calib_samples)  # DataError before any work
        elif images is None:
            raise OptionsError("int8 is calibrated on your images: pass --data DIR (class folders) or an .npz of x and y")
        else:
            from edgekit.export.calibration import representative_set

            calibration = representative_set(images, contract, options.calib_samples)
    holdout = None
    if options.max_drop is not None:
        from edgekit.export.selective import holdout_images, load_holdout

        if contract.crop == "digit":
            holdout = load_holdout(options.data, calibration)
        else:  # the user's images, none of them a calibration image
            from edgekit.runtime.image_input import scale_pixels

            holdout = holdout_images(images.x, images.y, calibration, to_input=lambda x: scale_pixels(x, contract))
    folded, rewrites = model, {}
    if options.fold_bn and any(t.fold_bn for t in targets):
        from edgekit.export.fold import NAME, fold_and_prove

        # ExportError before anything is written
        folded, report = fold_and_prove(model, calibration, logits=contract.scores == "logits")
        rewrites = {NAME: report.to_dict()} if report.applied else {}
    created = _make_out_dir(out_dir)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".edgekit-export-", dir=out_dir))
    except OSError as e:
        _remove_if_created(out_dir, created)
        raise ExportError(f"{out_dir}: cannot write to the output folder ({e.strerror or e}); pass --out to a writable folder") from None
    try:
        workdir = staging / ".work"
        workdir.mkdir()
        from edgekit.export.metadata import training_facts

        context = ExportContext(options, source_sha, calibration, workdir=workdir, training=training_facts(model_path),
                                holdout=holdout, contract=contract)
        artifacts = []
        for t in targets:
            use_fold = bool(rewrites) and t.fold_bn
            ctx = dataclasses.replace(context, rewrites=rewrites if use_fold else {})  # the cache stays shared
            artifacts.append(_export_one(folded if use_fold else model, t, staging, ctx, on_artifact))
        from edgekit.export.metadata import edgekit_version

        manifest = Manifest(edgekit_version(), {"path": str(model_path.resolve()), "sha256": source_sha}, artifacts)
        manifest = merge(manifest, read_manifest(out_dir), out_dir)
        _commit(staging, out_dir, [a.file for a in artifacts], manifest)
        return manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_created(out_dir, created)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_one(model, target: Target, staging: Path, context: ExportContext, on_artifact) -> Artifact:
    from edgekit.runtime.metadata import read_metadata
    from edgekit.runtime.files import sha256_file

    path = staging / target.file
    start = time.perf_counter()
    try:
        inputs, outputs = EXPORTERS[target.format.name](model, path, target.quantization, context)
    except EdgekitError:
        raise
    except Exception as e:
        text = str(e) or type(e).__name__
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EFBIG) or "No space left on device" in text:
            # TensorFlow says so deep inside a long op name: say it first, in the user's words.
            raise ExportError(f"{target} export failed: no space left on the disk of {staging.parent}; free some disk "
                              "space or pass --out to another disk; nothing was written") from None
        raise ExportError(f"{target} export failed ({type(e).__name__}: {first_line(e, 300)}); nothing was written") from None
    seconds = time.perf_counter() - start
    meta = read_metadata(path)
    if not meta or meta.get("format") != target.format.name or meta.get("quantization") != target.quantization.value:
        raise ExportError(f"{target}: the metadata did not survive the export; nothing was written")
    artifact = Artifact(target.file, target.format.name, target.quantization.value, path.stat().st_size,
                        sha256_file(path), inputs, outputs, round(seconds, 3), sorted(context.rewrites),
                        meta.get("selective"))
    if on_artifact is not None:
        on_artifact(artifact)
    return artifact


def _commit(staging: Path, out_dir: Path, files: list[str], manifest: Manifest) -> None:
    """Rename the staged artifacts into ``out_dir``, then write the manifest; all or nothing.

    Files about to be replaced are first hard-linked (or copied) into the staging folder, so that if anything
    fails or is interrupted part-way, every replaced file is restored and every new one removed.
    """
    backup = staging / ".backup"
    backup.mkdir()
    saved, placed = [], []
    try:
        for name in [*files, MANIFEST_NAME]:
            if (out_dir / name).is_file():
                try:
                    os.link(out_dir / name, backup / name)
                except OSError:
                    shutil.copy2(out_dir / name, backup / name)
                saved.append(name)
        for name in files:
            os.replace(staging / name, out_dir / name)
            placed.append(name)
        write_manifest(out_dir, manifest)
    except BaseException:
        for name in placed:
            if name in saved:
                os.replace(backup / name, out_dir / name)
            else:
                (out_dir / name).unlink(missing_ok=True)
        if MANIFEST_NAME in saved:
            os.replace(backup / MANIFEST_NAME, out_dir / MANIFEST_NAME)
        else:
            (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
        raise


def _make_out_dir(out_dir: Path) -> bool:
    """Create ``out_dir`` if needed; True if this call created it (so a failure can remove it again)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a folder; pass --out to a folder")
    if out_dir.is_dir():
        return False
    try:
        out_dir.mkdir(parents=True)
    except OSError as e:
        raise ExportError(f"{out_dir}: cannot create the output folder ({e.strerror or e}); pass --out to a writable folder") from None
    return True


def _remove_if_created(out_dir: Path, created: bool) -> None:
    if created:
        try:
            out_dir.rmdir()  # only if empty: never delete anything else
        except OSError:
            pass
