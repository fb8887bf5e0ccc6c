"""What a paper reports of a "Fake or real?" study: fooled rates with 95% intervals.

The fooled rate is the share of answers on colorized photos that said "real" (seed 001:
45.87%; Zhang et al.: 32%); its control is the share of real photos judged real. Intervals
are Wilson score intervals, which stay inside [0, 1] and behave at small counts and at
rates near 0 or 1, where the normal approximation does not. The pooled interval treats
answers as independent; with few participants answering many photos it is optimistic.
"""

import math
import statistics

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def wilson_interval(successes, trials, z=Z_95):
    """(low, high) Wilson score interval of a binomial proportion; (0, 1) with no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(judged_real, votes):
    """{"judged_real", "votes", "rate", "ci95"} of one group of answers (rate None if empty)."""
    return {"judged_real": judged_real, "votes": votes,
            "rate": judged_real / votes if votes else None,
            "ci95": list(wilson_interval(judged_real, votes))}


def summarize(votes, images):
    """Results of a study.

    votes: (participant, image id, kind, name, answer, seconds) rows (StudyDB.rows());
    images: (id, kind, name) of every photo, so unanswered photos are listed too.
    """
    counts = {image_id: [kind, name, 0, 0] for image_id, kind, name in images}
    for _, image_id, kind, name, answer, _ in votes:
        entry = counts.setdefault(image_id, [kind, name, 0, 0])
        entry[2] += answer == "real"
        entry[3] += 1
    per_image = [{"id": image_id, "kind": kind, "name": name, **proportion(real, total)}
                 for image_id, (kind, name, real, total) in counts.items()]
    per_image.sort(key=lambda row: (row["kind"], row["rate"] is None, -(row["rate"] or 0.0),
                                    row["name"]))  # most fooling first, unanswered last

    def pooled(kind):
        rows = [row for row in per_image if row["kind"] == kind]
        return proportion(sum(row["judged_real"] for row in rows),
                          sum(row["votes"] for row in rows))

    seconds = [row[5] for row in votes]
    return {
        "participants": len({row[0] for row in votes}),
        "votes": len(votes),
        "fooled": pooled("colorized"),
        "real_judged_real": pooled("real"),
        "seconds_per_answer": {
            "median": statistics.median(seconds) if seconds else None,
            "mean": statistics.fmean(seconds) if seconds else None,
        },
        "images": per_image,
    }
