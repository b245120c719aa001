"""Reading a Prometheus scrape the way Prometheus does: samples by their stored names (a counter's
`_total`, a histogram's `_bucket`, `_sum` and `_count`) and labels."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass
class Scrape:
    samples: list[Sample]
    kinds: dict[str, str]  # a sample's name -> its family's type (counter, gauge, histogram...)

    @classmethod
    def of(cls, text: str) -> Scrape:
        families = list(text_string_to_metric_families(text))
        samples = [sample for family in families for sample in family.samples]
        kinds = {sample.name: family.type for family in families for sample in family.samples}
        return cls(samples, kinds)

    def names(self) -> set[str]:
        """The names of the series Prometheus would store."""
        return {sample.name for sample in self.samples}

    def series(self, name: str, **labels: str) -> list[Sample]:
        return [
            sample
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum over the series of `name` that have these labels (0 when there are none)."""
        return sum(sample.value for sample in self.series(name, **labels))


def scrape(base_url: str) -> Scrape:
    """A worker's (or a live API's) /metrics."""
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    return Scrape.of(response.text)
