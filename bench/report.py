"""The shared benchmark report: every benchmark adds its result rows here; one JSON and one markdown file per run.

Rows are grouped into tables by title; a table's columns are the union of its rows' keys, in first-seen order.
The header records the machine (CPU, GPU, library versions) and the date, as docs/benchmarks.md asks of every
figure.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


def machine() -> dict:
    """Where the numbers were taken: CPU, cores, GPU (if any), torch / triton / diffusers versions, date."""
    import torch

    info = {
        "date": datetime.date.today().isoformat(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
    }
    for name in ("triton", "diffusers"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # not installed, or broken: the report says so
            info[name] = None
    return info


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return ""
    return str(value).replace("|", "\\|")


@dataclass
class BenchReport:
    """Result rows of one benchmark session, by table title."""

    tables: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, table: str, **row: object) -> None:
        self.tables.setdefault(table, []).append(row)

    def to_json(self) -> dict:
        return {"machine": machine(), "tables": self.tables}

    def to_markdown(self) -> str:
        info = machine()
        lines = ["# Benchmark report", "", ", ".join(f"{k}: {v}" for k, v in info.items() if v is not None), ""]
        for title, rows in self.tables.items():
            columns = list(dict.fromkeys(key for row in rows for key in row))
            lines += [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
            lines.append("")
        return "\n".join(lines)

    def write(self, stem: Path) -> tuple[Path, Path]:
        """Write `stem`.json and `stem`.md; returns both paths."""
        stem.parent.mkdir(parents=True, exist_ok=True)
        json_path, md_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
        json_path.write_text(json.dumps(self.to_json(), indent=1, default=str) + "\n")
        md_path.write_text(self.to_markdown())
        return json_path, md_path
