"""Study results as CSV rows and as an HTML page (the JSON is the summary itself)."""

import csv
import html
import io

CSV_FIELDS = ("kind", "name", "id", "votes", "judged_real", "rate", "ci95_low", "ci95_high")


def csv_rows(summary):
    """One row per photo, then one pooled row per kind (name "(all)")."""
    pooled = [("colorized", summary["fooled"]), ("real", summary["real_judged_real"])]
    rows = summary["images"] + [{"kind": kind, "name": "(all)", "id": "", **group}
                                for kind, group in pooled]
    for row in rows:
        yield {**{field: row.get(field) for field in CSV_FIELDS[:6]},
               "ci95_low": row["ci95"][0], "ci95_high": row["ci95"][1]}


def to_csv(summary):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(summary))
    return buffer.getvalue()


def _percent(group):
    if group["rate"] is None:
        return "–"
    low, high = group["ci95"]
    return f"{100 * group['rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def to_html(summary, links=""):
    """A self-contained results page; `links` is trusted HTML (downloads) put under the title."""
    seconds = summary["seconds_per_answer"]
    median = "–" if seconds["median"] is None else f"{seconds['median']:.1f} s"
    overview = [  # (element id for tests and scripts, label, value)
        ("participants", "Participants", summary["participants"]),
        ("answers", "Answers", summary["votes"]),
        ("fooled", "Colorized judged real (fooled rate, 95% CI)", _percent(summary["fooled"])),
        ("real", "Real judged real (95% CI)", _percent(summary["real_judged_real"])),
        ("seconds", "Median time per answer", median),
    ]
    overview_rows = "".join(f"<tr><th>{html.escape(label)}</th><td id='{key}'>{value}</td></tr>"
                            for key, label, value in overview)
    image_rows = "".join(
        f"<tr class='{row['kind']}'><td>{row['kind']}</td><td>{html.escape(row['name'])}</td>"
        f"<td>{row['votes']}</td><td>{row['judged_real']}</td><td>{_percent(row)}</td></tr>"
        for row in summary["images"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fake or real? — results</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}tr.real td{{color:#555}}</style>
</head><body><h1>Fake or real? — results</h1>{links}
<table id="overview">{overview_rows}</table>
<h2>Per photo</h2>
<table id="per-image"><tr><th>kind</th><th>photo</th><th>answers</th><th>judged real</th>
<th>% judged real [95% CI]</th></tr>{image_rows}</table></body></html>
"""


def to_text(summary):
    """The headline figures, for a terminal."""
    seconds = summary["seconds_per_answer"]["median"]
    lines = [f"participants {summary['participants']}, answers {summary['votes']}, "
             f"median {'–' if seconds is None else f'{seconds:.1f} s'} per answer",
             f"colorized judged real (fooled): {_percent(summary['fooled'])}",
             f"real judged real:               {_percent(summary['real_judged_real'])}"]
    lines += [f"  {row['kind']:<9} {row['name']:<40} {row['judged_real']:>4}/{row['votes']:<4} "
              f"{_percent(row)}" for row in summary["images"]]
    return "\n".join(lines)
