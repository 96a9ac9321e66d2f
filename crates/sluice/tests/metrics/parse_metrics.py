"""Parses a Prometheus text exposition from stdin with prometheus_client (a real parser,
not ours) and prints JSON: {"types": {family: type}, "samples": {"name{k="v",...}": value}}.
Exits non-zero (with the parser's error) if the text does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    text = sys.stdin.read()
    types = {}
    samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    json.dump({"types": types, "samples": samples}, sys.stdout)


if __name__ == "__main__":
    main()
