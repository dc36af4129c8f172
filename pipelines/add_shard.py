"""`python -m pipelines.add_shard FILE [FILE ...]`: add web-doc shards from the command line, in one step.

For each file: copy it into the web-docs input folder (`ASSAY_WEB_DOCS_INPUT`) unless it is already
there, register its name as a `web_doc_shards` partition in the instance of `$DAGSTER_HOME`, and
materialize the shard's intake (raw records, clean documents, quarantine, embeddings) in that
instance, so the runs and their checks show in the UI like the sensor's. `--annotate` adds the
teacher annotations; `--corpus` then refreshes the corpus summary over every shard. A file that
cannot be read is still added: its shard is recorded as unreadable (quarantined whole).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

import dagster as dg

from pipelines.definitions import defs
from pipelines.partitions import web_doc_shards
from resources.io_manager import latest_materialization

INTAKE = ("raw_web_docs", "web_docs", "web_docs_quarantine", "web_doc_embeddings")
ANNOTATION = ("web_doc_annotations", "web_doc_annotations_quarantine")
CORPUS = ("web_corpus_summary",)


def place_in_input_folder(path: Path, folder: Path, replace: bool = False) -> Path:
    """The file's place in the input folder (copied there when it is elsewhere); its name is the shard key.

    Refuses to overwrite a different file of the same name unless `replace`.
    """
    target = folder / path.name
    if path.resolve() == target.resolve():
        return target
    if target.exists() and not replace and not filecmp.cmp(path, target, shallow=False):
        raise FileExistsError(f"{target} exists with other content; rename the file or pass --replace")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target


def add_shard(instance: dg.DagsterInstance, shard: str, selection: tuple[str, ...]) -> dg.ExecuteInProcessResult:
    """Register `shard` (idempotent) and materialize `selection` for it in `instance`."""
    if not instance.has_dynamic_partition(web_doc_shards.name, shard):
        instance.add_dynamic_partitions(web_doc_shards.name, [shard])
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(key) for key in selection]
    return job.execute_in_process(instance=instance, partition_key=shard, asset_selection=keys, raise_on_error=False)


def refresh_corpus(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Materialize the corpus summary over every registered shard."""
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(key) for key in CORPUS]
    return job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)


def _report(instance: dg.DagsterInstance, shard: str) -> str:
    counts = []
    for key in ("raw_web_docs", "web_docs", "web_docs_quarantine"):
        event = latest_materialization(instance, dg.AssetKey(key), shard)
        rows = event.metadata.get("dagster/row_count") if event else None
        counts.append(f"{key}={getattr(rows, 'value', '?')}")
    return " ".join(counts)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, add every shard, print what happened; 1 when a run failed."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.add_shard", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSONL/Parquet files of web documents")
    parser.add_argument("--annotate", action="store_true", help="also run the teacher annotations (LLM)")
    parser.add_argument("--corpus", action="store_true", help="then refresh the corpus summary")
    parser.add_argument("--replace", action="store_true", help="overwrite a different input file of the same name")
    args = parser.parse_args(argv)
    folder = Path(defs.resources["inputs"].web_docs)
    selection = INTAKE + (ANNOTATION if args.annotate else ())
    failed = []
    with dg.DagsterInstance.get() as instance:
        for path in args.files:
            if not path.is_file():
                parser.error(f"{path}: no such file")
            shard = place_in_input_folder(path, folder, args.replace).name
            result = add_shard(instance, shard, selection)
            status = "ok" if result.success else "FAILED"
            print(f"[assay] shard {shard}: {status} (run {result.run_id}) {_report(instance, shard)}", flush=True)
            failed += [] if result.success else [shard]
        if args.corpus and not failed:
            result = refresh_corpus(instance)
            print(f"[assay] web_corpus_summary: {'ok' if result.success else 'FAILED'} (run {result.run_id})")
            failed += [] if result.success else ["web_corpus_summary"]
    print("[assay] see the runs in the UI: make ui -> http://127.0.0.1:3000", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
