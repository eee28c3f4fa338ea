"""The continual-learning metrics, one definition each, on an accuracy matrix.

R[i][j] is the accuracy on task j after training task i (0-based; T tasks; the last row
i = T-1 is the end of the sequence). Definitions as in the field (Lopez-Paz & Ranzato 2017,
Chaudhry et al. 2018):

    average accuracy     A   = (1/T) * sum_j R[T-1][j]
    forgetting of task j f_j = max_{l < T-1} R[l][j] - R[T-1][j]          for j < T-1
    average forgetting   F   = (1/(T-1)) * sum_{j < T-1} f_j
    backward transfer    BWT = (1/(T-1)) * sum_{j < T-1} (R[T-1][j] - R[j][j])

Forgetting takes the best accuracy task j ever had before the end (rows before j, trained
before j was seen, count too, as in the definition; they are rarely the best) and is >= 0
when the end is no better than that best. BWT is the change from just after task j was
trained to the end: negative when the sequence forgot. Joint training has only the final
row: its average accuracy is defined, forgetting and BWT are not (None).

Across seeds, each metric is reported as its median with the min and max (with 3 seeds the
range is the honest spread; an interval would pretend to know more).
"""

from __future__ import annotations

import statistics


def average_accuracy(matrix: list[list[float]]) -> float:
    last = matrix[-1]
    return sum(last) / len(last)


def forgetting(matrix: list[list[float]]) -> list[float]:
    """f_j for every task j < T-1 (empty for a single row)."""
    final = matrix[-1]
    earlier = matrix[:-1]
    if not earlier:
        return []
    return [max(row[j] for row in earlier) - final[j] for j in range(len(final) - 1)]


def average_forgetting(matrix: list[list[float]]) -> float | None:
    values = forgetting(matrix)
    return sum(values) / len(values) if values else None


def backward_transfer(matrix: list[list[float]]) -> float | None:
    if len(matrix) < 2:
        return None
    final = matrix[-1]
    changes = [final[j] - matrix[j][j] for j in range(len(final) - 1)]
    return sum(changes) / len(changes)


def matrix_metrics(matrix: list[list[float]]) -> dict:
    """Every metric of one matrix (a sequential run's T x T, or joint's single row)."""
    return {
        "average_accuracy": average_accuracy(matrix),
        "average_forgetting": average_forgetting(matrix),
        "forgetting": forgetting(matrix),
        "backward_transfer": backward_transfer(matrix),
        "last_task_accuracy": matrix[-1][-1],
    }


def spread(values: list[float | None]) -> dict | None:
    """{"median", "min", "max", "values"} over seeds; None when a value is undefined."""
    if not values or any(v is None for v in values):
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def median_matrix(matrices: list[list[list[float]]]) -> list[list[float]]:
    """The element-wise median of several same-shape matrices (one per seed)."""
    rows, cols = len(matrices[0]), len(matrices[0][0])
    return [
        [statistics.median(m[i][j] for m in matrices) for j in range(cols)] for i in range(rows)
    ]


def summarize(matrices: list[list[list[float]]]) -> dict:
    """Per-seed metrics of each matrix, and each metric's spread over the seeds."""
    per_seed = [matrix_metrics(m) for m in matrices]
    summary = {
        key: spread([metrics[key] for metrics in per_seed])
        for key in (
            "average_accuracy",
            "average_forgetting",
            "backward_transfer",
            "last_task_accuracy",
        )
    }
    n_forgetting = len(per_seed[0]["forgetting"])
    summary["forgetting"] = [
        spread([metrics["forgetting"][j] for metrics in per_seed]) for j in range(n_forgetting)
    ]
    summary["matrix_median"] = median_matrix(matrices)
    return summary
