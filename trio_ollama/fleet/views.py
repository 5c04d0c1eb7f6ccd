"""The fleet seen whole: each replica's `/api/tags`, `/api/ps`, `/v1/models` and `/metrics`
merged into one answer. Pure functions of the replicas' own answers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

REPLICA_LABEL = "replica"


def merge_ps(answers: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Every replica's loaded models, each with the replica it is on (`replica`)."""
    models = [
        {**model, REPLICA_LABEL: replica}
        for replica, answer in answers
        for model in answer.get("models", [])
    ]
    return {"models": models}


def merge_listing(answers: Sequence[dict[str, Any]], key: str, field: str) -> dict[str, Any]:
    """`/api/tags` (`key` "models", `field` "name") or `/v1/models` ("data", "id") across
    replicas: each model once, as the first replica that has it lists it. Replicas on one
    shared store list the same models; on stores of their own, the union."""
    seen: set[str] = set()
    merged = []
    for answer in answers:
        for entry in answer.get(key, []):
            if entry.get(field) not in seen:
                seen.add(entry.get(field))
                merged.append(entry)
    return {**(answers[0] if answers else {}), key: merged}


def merge_metrics(answers: Sequence[tuple[str, str]]) -> bytes:
    """Every replica's Prometheus metrics in one exposition, each sample labelled with its
    replica (`replica="..."`), each family's HELP and TYPE once."""
    families: dict[str, Metric] = {}
    for replica, text in answers:
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            merged.samples.extend(
                s._replace(labels={**s.labels, REPLICA_LABEL: replica}) for s in family.samples
            )
    return generate_latest(_Families(list(families.values())))


class _Families:
    """A collector of parsed families, for `generate_latest`."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
