"""Bar chart of a study like seed 001 Fig. 6: % of answers "real" per colorized photo.

Photos are sorted by their "fooling capacity", as in the paper; error bars are the 95%
Wilson intervals, and two lines give the pooled fooled rate and the real photos' control.
"""


def save_chart(summary, path):
    """Write the chart of `summary` (stats.summarize) to `path` (PNG)."""
    import matplotlib  # imported late: only `results --chart` needs it

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = sorted((row for row in summary["images"] if row["kind"] == "colorized" and row["votes"]),
                  key=lambda row: -row["rate"])
    rates = [100 * row["rate"] for row in rows]
    errors = [[100 * (row["rate"] - row["ci95"][0]) for row in rows],
              [100 * (row["ci95"][1] - row["rate"]) for row in rows]]
    figure, axes = plt.subplots(figsize=(max(6.0, 0.5 * len(rows) + 2), 4.0), dpi=120)
    positions = range(len(rows))
    axes.bar(positions, rates, yerr=errors, capsize=3, color="#4c72b0", label="colorized photo")
    lines = (("fooled", "--", "all colorized"), ("real_judged_real", ":", "real photos"))
    for key, style, label in lines:
        if summary[key]["rate"] is not None:
            axes.axhline(100 * summary[key]["rate"], linestyle=style, color="black",
                         label=f"{label}: {100 * summary[key]['rate']:.1f}%")
    axes.set_xticks(list(positions), [row["name"] for row in rows], rotation=60, ha="right",
                    fontsize=7)
    axes.set_ylim(0, 112)  # headroom above 100% for the legend
    axes.set_yticks(range(0, 101, 20))
    axes.set_ylabel('% of answers "real"')
    axes.set_title(f'Fake or real? {summary["participants"]} participants, '
                   f'{summary["votes"]} answers (95% CI)')
    axes.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
