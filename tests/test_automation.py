"""Declarative automation of the web-docs chain, evaluated in-process as the daemon's sensor would:
a burst of new shards retrains the students once and relabels each shard once."""

import os
from collections import Counter
from functools import cache
from pathlib import Path

import dagster as dg
import pytest

from pipelines.automation import CORPUS_ASSETS, LABELS, automation_sensor
from pipelines.definitions import build_definitions
from pipelines.profiles import build_resources
from pipelines.sensors import web_doc_shard_sensor
from tests.conftest import sample_records, write_jsonl

SHARD_ASSETS = (
    "raw_web_docs",
    "web_docs",
    "web_docs_quarantine",
    "web_doc_embeddings",
    "web_doc_annotations",
    "web_doc_annotations_quarantine",
)
STUDENTS = ("mlp_filter", "encoder_classifier", "distilled_classifier")


@cache
def _definitions() -> dg.Definitions:
    """The code location (resources play no part in evaluating conditions, so one build serves all tests)."""
    return build_definitions(build_resources("local"))


class Ticks:
    """Evaluates the automation conditions tick after tick and counts what each tick requested."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.defs = _definitions()
        self.instance = instance
        self.cursor = None
        self.requested: Counter[str] = Counter()
        self.label_partitions: list[str] = []

    def tick(self) -> set[str]:
        """One evaluation; the names of the assets it requested."""
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        names = set()
        for key in self.defs.resolve_asset_graph().materializable_asset_keys:
            count = result.get_num_requested(key)
            if count:
                names.add(key.to_user_string())
                self.requested[key.to_user_string()] += count
        self.label_partitions += sorted(result.get_requested_partitions(dg.AssetKey(LABELS)) or [])
        return names


def _materialized(instance: dg.DagsterInstance, names: tuple[str, ...], partition: str | None = None) -> None:
    """What a successful run of these assets leaves in the instance."""
    for name in names:
        instance.report_runless_asset_event(dg.AssetMaterialization(name, partition=partition))


def _drop_shards(names: list[str]) -> None:
    folder = Path(os.environ["ASSAY_WEB_DOCS_INPUT"])
    for name in names:
        write_jsonl(folder / name, sample_records("c4_en_sample_1000.jsonl", 2))


def _sensor_registers(instance: dg.DagsterInstance) -> list[str]:
    """Run the file sensor once and apply its partition requests, as the daemon does; the shard runs' keys."""
    context = dg.build_sensor_context(instance=instance, resources={"inputs": build_resources("local")["inputs"]})
    result = web_doc_shard_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return [request.partition_key for request in result.run_requests]


def test_automation_sensor_is_on_by_default_and_covers_the_chain(assay_home):
    defs = _definitions()
    sensor = defs.get_sensor_def(automation_sensor.name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    automated = {key.to_user_string() for key in graph.materializable_asset_keys if graph.get(key).automation_condition}
    assert automated == {*CORPUS_ASSETS, LABELS}
    assert "web_corpus_refresh_sensor" not in {s.name for s in defs.sensors}


def test_nothing_is_requested_before_any_shard(instance):
    ticks = Ticks(instance)
    assert ticks.tick() == set()
    assert ticks.tick() == set()


@pytest.mark.parametrize("burst", [1, 4])
def test_a_burst_of_shards_retrains_the_students_once_and_labels_each_shard_once(instance, burst):
    shards = [f"burst-{index}.jsonl" for index in range(burst)]
    _drop_shards(shards)
    assert _sensor_registers(instance) == shards  # one shard run per new file, all requested at once
    ticks = Ticks(instance)
    assert ticks.tick() == set()

    for done, shard in enumerate(shards, start=1):  # shard runs finish one after another, a tick between
        _materialized(instance, SHARD_ASSETS, shard)
        requested = ticks.tick()
        assert requested == (set(CORPUS_ASSETS) if done == burst else set()), f"after {done}/{burst} shards"

    _materialized(instance, CORPUS_ASSETS)  # the corpus run: summary, NMI, students, agreement
    assert ticks.tick() == {LABELS}
    for shard in shards:
        _materialized(instance, (LABELS,), shard)
    assert ticks.tick() == set()
    assert ticks.tick() == set()

    assert {name: ticks.requested[name] for name in STUDENTS} == dict.fromkeys(STUDENTS, 1)
    assert ticks.requested[LABELS] == burst and sorted(ticks.label_partitions) == shards


def test_a_second_burst_retrains_once_more_and_relabels_every_shard(instance):
    first, second = ["a.jsonl", "b.jsonl"], ["c.jsonl", "d.jsonl", "e.jsonl"]
    ticks = Ticks(instance)
    ticks.tick()  # the sensor is on before the shards arrive
    _drop_shards(first)
    _sensor_registers(instance)
    for shard in first:
        _materialized(instance, SHARD_ASSETS, shard)
    ticks.tick()
    _materialized(instance, CORPUS_ASSETS)
    ticks.tick()
    for shard in first:
        _materialized(instance, (LABELS,), shard)

    _drop_shards(second)
    assert _sensor_registers(instance) == second
    assert ticks.tick() == set()  # the new shards are registered but not cleaned: wait
    for shard in second:
        _materialized(instance, SHARD_ASSETS, shard)
    assert ticks.tick() == set(CORPUS_ASSETS)
    _materialized(instance, CORPUS_ASSETS)
    assert ticks.tick() == {LABELS}

    assert ticks.requested["mlp_filter"] == 2  # once per burst, not once per shard (5)
    assert Counter(ticks.label_partitions) == Counter({**dict.fromkeys(first, 2), **dict.fromkeys(second, 1)})
